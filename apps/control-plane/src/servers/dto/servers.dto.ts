import { ApiProperty } from '@nestjs/swagger';
import { IsNotEmpty, IsString, Matches, MaxLength } from 'class-validator';

const NAME = /^[^\u0000-\u001f\u007f]+$/;

export class CreateServerDto {
  @ApiProperty({ example: 'web-1', maxLength: 100 })
  @IsString()
  @IsNotEmpty()
  @MaxLength(100)
  @Matches(NAME, { message: 'name must not contain control characters' })
  name!: string;
}

export class UpdateServerDto extends CreateServerDto {}
