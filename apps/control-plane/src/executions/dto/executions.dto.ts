import { EXECUTION_STATUSES, type ExecutionStatus, STREAMS, type OutputStream, TRIGGERS, type Trigger } from '@app/protocol';
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsUUID } from 'class-validator';
import { ListQueryDto } from '../../common/list-query.dto.js';

export class RunScriptDto {
  @ApiProperty({ description: 'The server whose agent runs the script', format: 'uuid', example: '8a2f6c1e-4b7d-4e0a-9c3b-5d1e2f3a4b6c' })
  @IsUUID('all', { message: 'serverId must be a UUID' })
  serverId!: string;
}

export class ListExecutionsQueryDto extends ListQueryDto {
  @ApiPropertyOptional() @IsOptional() @IsUUID('all', { message: 'scriptId must be a UUID' }) scriptId?: string;
  @ApiPropertyOptional() @IsOptional() @IsUUID('all', { message: 'serverId must be a UUID' }) serverId?: string;
  @ApiPropertyOptional() @IsOptional() @IsUUID('all', { message: 'webhookId must be a UUID' }) webhookId?: string;

  @ApiPropertyOptional({ enum: TRIGGERS })
  @IsOptional()
  @IsIn(TRIGGERS, { message: `trigger must be one of ${TRIGGERS.join(', ')}` })
  trigger?: Trigger;

  @ApiPropertyOptional({ enum: EXECUTION_STATUSES })
  @IsOptional()
  @IsIn(EXECUTION_STATUSES, { message: `status must be one of ${EXECUTION_STATUSES.join(', ')}` })
  status?: ExecutionStatus;
}

export class OutputQueryDto {
  @ApiPropertyOptional({ enum: STREAMS, description: 'only this stream' })
  @IsOptional()
  @IsIn(STREAMS, { message: `stream must be one of ${STREAMS.join(', ')}` })
  stream?: OutputStream;
}
