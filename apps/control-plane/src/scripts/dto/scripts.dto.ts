import { INTERPRETERS, type Interpreter, MAX_RUN_AS_LENGTH, MAX_SCRIPT_CONTENT, RUN_AS_PATTERN } from '@app/protocol';
import { SafeName } from '../../common/validation.js';
import { ApiProperty, ApiPropertyOptional, PartialType } from '@nestjs/swagger';
import { ArrayMaxSize, ArrayUnique, IsArray, IsIn, IsInt, IsNotEmpty, IsOptional, IsString, Matches, Max, MaxLength, Min, ValidateIf } from 'class-validator';
import { MAX_SECRETS_PER_SCRIPT } from '../../secrets/secret-names.js';

export const MAX_OUTPUT_BYTES_LIMIT = 1024 * 1024 * 1024;

export class CreateScriptDto {
  @ApiProperty({ example: 'deploy', maxLength: 100 })
  @IsString()
  @IsNotEmpty()
  @MaxLength(100)
  @SafeName()
  name!: string;

  @ApiProperty({ example: '#!/bin/bash\necho deploying\n', maxLength: MAX_SCRIPT_CONTENT })
  @IsString()
  @MaxLength(MAX_SCRIPT_CONTENT)
  content!: string;

  @ApiPropertyOptional({ enum: INTERPRETERS, default: 'bash' })
  @IsOptional()
  @IsIn(INTERPRETERS, { message: `interpreter must be one of ${INTERPRETERS.join(', ')}` })
  interpreter?: Interpreter;

  @ApiPropertyOptional({ minimum: 1, maximum: 3600, default: 300 })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(3600)
  timeoutSeconds?: number;

  @ApiPropertyOptional({ minimum: 0, maximum: MAX_OUTPUT_BYTES_LIMIT, default: 64 * 1024 * 1024 })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(MAX_OUTPUT_BYTES_LIMIT)
  maxOutputBytes?: number;

  @ApiPropertyOptional({ maxLength: 2000 })
  @IsOptional()
  @IsString()
  @MaxLength(2000)
  description?: string;

  @ApiPropertyOptional({
    type: [String],
    example: ['DB_PASSWORD'],
    description: 'Names of the secrets its runs get as environment variables (versioned with the content)',
  })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(MAX_SECRETS_PER_SCRIPT)
  @ArrayUnique({ message: 'secrets must not name a secret twice' })
  @IsString({ each: true })
  secrets?: string[];

  @ApiPropertyOptional({
    type: String,
    nullable: true,
    maxLength: MAX_RUN_AS_LENGTH,
    example: 'deploy',
    description:
      "The user its runs ask the agent for (versioned with the content). The agent must allow it (--allow-run-as) or the run fails before it starts; null or absent: the agent's default script user (devpilot-run)",
  })
  @IsOptional()
  @ValidateIf((_, v) => v !== null)
  @IsString()
  @MaxLength(MAX_RUN_AS_LENGTH)
  @Matches(RUN_AS_PATTERN, { message: 'runAs must be a user name (letters, digits, _ . -, not starting with a digit, . or -)' })
  runAs?: string | null;
}

/** Every field optional; a changed `content` creates the next version. */
export class UpdateScriptDto extends PartialType(CreateScriptDto) {}
