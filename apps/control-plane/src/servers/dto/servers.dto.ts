import { SafeName } from '../../common/validation.js';
import { ApiProperty } from '@nestjs/swagger';
import { IsNotEmpty, IsString, MaxLength } from 'class-validator';


export class CreateServerDto {
  @ApiProperty({ example: 'web-1', maxLength: 100 })
  @IsString()
  @IsNotEmpty()
  @MaxLength(100)
  @SafeName()
  name!: string;
}

export class UpdateServerDto extends CreateServerDto {}
