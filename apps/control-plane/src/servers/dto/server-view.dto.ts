import { ApiProperty } from '@nestjs/swagger';
import { type Assert, DATE_TIME, type Json, type Same } from '../../common/api-doc.js';
import type { Page } from '../../common/pagination.js';
import type { ServerStatus } from '../server.entity.js';
import type { ServerView } from '../servers.service.js';

export class ServerViewDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'web-01' }) name!: string;
  @ApiProperty({ enum: ['online', 'offline'] }) status!: ServerStatus;
  @ApiProperty({ ...DATE_TIME, nullable: true }) lastSeenAt!: string | null;
  @ApiProperty({ type: String, nullable: true, example: 'web-01.example.com' }) hostname!: string | null;
  @ApiProperty({ type: String, nullable: true, example: 'linux x64' }) platform!: string | null;
  @ApiProperty({ type: String, nullable: true, example: '0.1.0' }) agentVersion!: string | null;
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
  @ApiProperty({ description: 'The command that installs the agent on this server (with a placeholder unless the token was just issued)',
    example: 'curl -fsSL https://devpilot.example.com/agent/install.sh | sudo sh -s -- --url https://devpilot.example.com --token <agent token>',
  })
  installCommand!: string;
  @ApiProperty(DATE_TIME) createdAt!: string;
}

/** A new server, or a rotated token: the agent token is in this answer only. */
export class ServerWithTokenDto extends ServerViewDto {
  @ApiProperty({ example: 'dpa_Jq3vX0bN5mK8pR2tW6yZ1cF4hL7sD9gA0eU3iO5kM8n' }) agentToken!: string;
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
