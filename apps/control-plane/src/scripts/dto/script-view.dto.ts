import { INTERPRETERS, type Interpreter } from '@app/protocol';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { type Assert, DATE_TIME, type Json, type Same } from '../../common/api-doc.js';
import type { Page } from '../../common/pagination.js';
import type { ScriptsService, ScriptView } from '../scripts.service.js';

export class ScriptViewDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'deploy' }) name!: string;
  @ApiProperty({ example: 'Pull the main branch and restart the app' }) description!: string;
  @ApiProperty({ enum: INTERPRETERS }) interpreter!: Interpreter;
  @ApiProperty() timeoutSeconds!: number;
  @ApiProperty() maxOutputBytes!: number;
  @ApiProperty({ description: 'The current version' }) version!: number;
  @ApiPropertyOptional({ description: 'The current content (in a single script, not in lists)' }) content?: string;
  @ApiPropertyOptional({ type: [String], description: 'Secrets its runs get (in a single script, not in lists); versioned with the content' })
  secrets?: string[];
  @ApiPropertyOptional({
    type: String,
    nullable: true,
    description: "The user its runs ask the agent for (in a single script, not in lists); versioned with the content; null: the agent's default script user",
  })
  runAs?: string | null;
  @ApiProperty(DATE_TIME) createdAt!: string;
  @ApiProperty(DATE_TIME) updatedAt!: string;
}

export class ScriptPageDto {
  @ApiProperty({ type: [ScriptViewDto] }) items!: ScriptViewDto[];
  @ApiProperty({ type: String, nullable: true }) nextCursor!: string | null;
}

/** A version in the list: its size, not its content. */
export class ScriptVersionSummaryDto {
  @ApiProperty() version!: number;
  @ApiProperty(DATE_TIME) createdAt!: string;
  @ApiProperty({ description: 'Size of the content in bytes' }) bytes!: number;
}

export class ScriptVersionPageDto {
  @ApiProperty({ type: [ScriptVersionSummaryDto] }) items!: ScriptVersionSummaryDto[];
  @ApiProperty({ type: String, nullable: true }) nextCursor!: string | null;
}

export class ScriptVersionDto {
  @ApiProperty({ format: 'uuid' }) scriptId!: string;
  @ApiProperty() version!: number;
  @ApiProperty({ example: 'set -e\ncd /srv/app && git pull --ff-only && systemctl restart app' }) content!: string;
  @ApiProperty({ type: [String] }) secrets!: string[];
  @ApiProperty({ type: String, nullable: true, description: "The user its runs ask the agent for; null: the agent's default script user" })
  runAs!: string | null;
  @ApiProperty(DATE_TIME) createdAt!: string;
}

export type ScriptDocsMatch = [
  Assert<Same<Json<ScriptView>, ScriptViewDto>>,
  Assert<Same<Json<Page<ScriptView>>, ScriptPageDto>>,
  Assert<Same<Json<Awaited<ReturnType<ScriptsService['listVersions']>>>, ScriptVersionPageDto>>,
  Assert<Same<Json<Awaited<ReturnType<ScriptsService['getVersion']>>>, ScriptVersionDto>>,
];
