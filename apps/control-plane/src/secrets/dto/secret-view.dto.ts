import { ApiProperty } from '@nestjs/swagger';
import { type Assert, DATE_TIME, type Json, type Same } from '../../common/api-doc.js';
import type { Page } from '../../common/pagination.js';
import type { SecretView } from '../secrets.service.js';

/** A secret as every route shows it: never its value. */
export class SecretViewDto {
  @ApiProperty({ format: 'uuid' }) id!: string;
  @ApiProperty({ example: 'DB_PASSWORD' }) name!: string;
  @ApiProperty({ type: String, nullable: true, format: 'uuid', description: 'Null: every server of the workspace' }) serverId!: string | null;
  @ApiProperty(DATE_TIME) createdAt!: string;
  @ApiProperty(DATE_TIME) updatedAt!: string;
}

export class SecretPageDto {
  @ApiProperty({ type: [SecretViewDto] }) items!: SecretViewDto[];
  @ApiProperty({ type: String, nullable: true }) nextCursor!: string | null;
}

export type SecretDocsMatch = [Assert<Same<Json<SecretView>, SecretViewDto>>, Assert<Same<Json<Page<SecretView>>, SecretPageDto>>];
