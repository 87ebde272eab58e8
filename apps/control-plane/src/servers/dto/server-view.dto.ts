import { ApiProperty } from '@nestjs/swagger';
import { type Assert, DATE_TIME, type Json, type Same } from '../../common/api-doc.js';
import type { Page } from '../../common/pagination.js';
import type { ServerStatus } from '../server.entity.js';
import type { ServerView } from '../servers.service.js';

export class ServerViewDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty() name!: string;
  @ApiProperty({ enum: ['online', 'offline'] }) status!: ServerStatus;
  @ApiProperty({ ...DATE_TIME, nullable: true }) lastSeenAt!: string | null;
  @ApiProperty({ type: String, nullable: true }) hostname!: string | null;
  @ApiProperty({ type: String, nullable: true }) platform!: string | null;
  @ApiProperty({ type: String, nullable: true }) agentVersion!: string | null;
  @ApiProperty({
    type: String,
    nullable: true,
    description: 'The user scripts run as when they name no runAs, as the agent said when it last connected (null: never connected, or an agent too old to say)',
  })
  runsScriptsAs!: string | null;
  @ApiProperty({
    type: Boolean,
    nullable: true,
    description: 'False: the agent cannot switch users and runs scripts as itself (a script can read what the agent can)',
  })
  switchesUsers!: boolean | null;
  @ApiProperty({ type: [String], nullable: true, description: "Users a script's runAs may name on this server" })
  allowRunAs!: string[] | null;
  @ApiProperty({ description: 'The command that installs the agent on this server (with a placeholder unless the token was just issued)' })
  installCommand!: string;
  @ApiProperty(DATE_TIME) createdAt!: string;
}

/** A new server, or a rotated token: the agent token is in this answer only. */
export class ServerWithTokenDto extends ServerViewDto {
  @ApiProperty() agentToken!: string;
}

export class ServerPageDto {
  @ApiProperty({ type: [ServerViewDto] }) items!: ServerViewDto[];
  @ApiProperty({ type: String, nullable: true }) nextCursor!: string | null;
}

export type ServerDocsMatch = [
  Assert<Same<Json<ServerView>, ServerViewDto>>,
  Assert<Same<Json<ServerView & { agentToken: string }>, ServerWithTokenDto>>,
  Assert<Same<Json<Page<ServerView>>, ServerPageDto>>,
];
