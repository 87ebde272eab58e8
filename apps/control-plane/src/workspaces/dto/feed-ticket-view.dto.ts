import { ApiProperty } from '@nestjs/swagger';
import { type Assert, type Json, type Same } from '../../common/api-doc.js';
import type { FeedTicketsController } from '../feed-tickets.controller.js';

/** A one-time ticket for the `/dashboard` socket. */
export class FeedTicketDto {
  @ApiProperty({ description: 'Single use: pass it as ?ticket= on the /dashboard-io/ upgrade' }) ticket!: string;
  @ApiProperty({ format: 'date-time' }) expiresAt!: string;
}

export type FeedTicketDocsMatch = Assert<Same<Json<Awaited<ReturnType<FeedTicketsController['issue']>>>, FeedTicketDto>>;
