import { Controller, Get, HttpStatus, Param, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';
import { AppException } from '../common/app-exception.js';
import { Public } from '../common/auth/auth-context.js';
import { findAgentFile } from './agent-files.js';

const TYPES: Record<string, string> = {
  'devpilot-agent.cjs': 'application/javascript; charset=utf-8',
  'devpilot-agent.service': 'text/plain; charset=utf-8',
  'install.sh': 'text/x-shellscript; charset=utf-8',
};

/** The agent bundle, its systemd unit and the install script, for the one-line install command (public). */
@ApiExcludeController()
@Public()
@Controller('agent')
export class AgentFilesController {
  @Get(':file')
  download(@Param('file') file: string, @Res() res: Response): void {
    // Own keys only: `constructor`, `__proto__` and the like are names of nothing here.
    const type = Object.hasOwn(TYPES, file) ? TYPES[file] : undefined;
    const found = type ? findAgentFile(file) : null;
    if (!type || !found) {
      throw new AppException(HttpStatus.NOT_FOUND, 'NOT_FOUND', type ? `${file} is not built on this control plane (npm run build:agent)` : 'Not found');
    }
    res.setHeader('Content-Type', type);
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(found);
  }
}
