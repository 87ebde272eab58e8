import { describe, expect, it } from '@jest/globals';
import { OutputBatch, parseMessage, StartExecution } from './index.js';

describe('protocol messages', () => {
  it('accepts a well-formed output batch and keeps bytes as bytes', () => {
    const r = parseMessage(OutputBatch, {
      executionId: '7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e11',
      chunks: [{ seq: 0, stream: 'stdout', data: Buffer.from([0, 255, 10]) }],
    });
    expect(r.ok).toBe(true);
    if (r.ok) expect(Buffer.from(r.value.chunks[0]!.data)).toEqual(Buffer.from([0, 255, 10]));
  });

  it('refuses a negative seq with a code and the field named', () => {
    const r = parseMessage(OutputBatch, {
      executionId: '7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e11',
      chunks: [{ seq: -1, stream: 'stdout', data: Buffer.alloc(1) }],
    });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.error.code).toBe('INVALID_PAYLOAD');
      expect(r.error.error.message).toContain('chunks.0.seq');
    }
  });

  it('refuses an unknown interpreter', () => {
    const r = parseMessage(StartExecution, {
      executionId: '7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e11',
      interpreter: 'perl',
      content: 'x',
      env: {},
      timeoutMs: 1000,
      maxOutputBytes: 10,
    });
    expect(r.ok).toBe(false);
  });

  it('carries a webhook request as bytes, larger than an output chunk; refuses a body that is not bytes', () => {
    const start = { executionId: '7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e11', interpreter: 'bash', content: 'x', env: {}, timeoutMs: 1000, maxOutputBytes: 10 };
    const body = Buffer.alloc(1024 * 1024, 0xff);
    const r = parseMessage(StartExecution, { ...start, payload: { body, event: 'push', deliveryId: 'd', contentType: 'application/json' } });
    expect(r.ok).toBe(true);
    if (r.ok) expect(Buffer.from(r.value.payload!.body).equals(body)).toBe(true);
    const text = parseMessage(StartExecution, { ...start, payload: { body: '{}', event: '', deliveryId: '', contentType: '' } });
    expect(text.ok).toBe(false);
    if (!text.ok) expect(text.error.error.message).toContain('payload.body');
  });
});
