import { Controller, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiErrors } from '../common/api-doc.js';
import { Auth, type AuthContext, ViewerMayPost } from '../common/auth/auth-context.js';
import { FeedTicketDto } from './dto/feed-ticket-view.dto.js';
import { FeedTickets } from './feed-tickets.service.js';

@ApiTags('workspaces')
@ApiBearerAuth()
@Controller()
export class FeedTicketsController {
  constructor(private readonly tickets: FeedTickets) {}

  @Post('feed-tickets')
  @ViewerMayPost()
  @HttpCode(201)
  @ApiOkResponse({ type: FeedTicketDto })
  @ApiErrors(401)
  @ApiOperation({
    summary: 'A one-time ticket (valid 45 s) to open the /dashboard socket with, at path /dashboard-io/ with ?ticket=<ticket>: what a browser uses instead of its API key. Viewer keys too.',
  })
  issue(@Auth() auth: AuthContext) {
    return this.tickets.issue(auth);
  }
}
