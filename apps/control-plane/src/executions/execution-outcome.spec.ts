import { describe, expect, it } from '@jest/globals';
import type { ExecutionFinished } from '@app/protocol';
import { outcome } from './run-commands.js';
import { decodeExecutionCursor } from './execution-view.js';

const report = (over: Partial<ExecutionFinished>): ExecutionFinished => ({
  executionId: '7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e11',
  exitCode: 0,
  signal: null,
  timedOut: false,
  cancelled: false,
  lastSeq: -1,
  outputBytes: 0,
  truncated: false,
  error: null,
  ...over,
});

describe('outcome of a finished report', () => {
  it.each([
    [{ exitCode: 0 }, 'succeeded', null],
    [{ exitCode: 3 }, 'failed', null],
    [{ exitCode: null, signal: 'SIGKILL' }, 'failed', 'killed by SIGKILL'],
    [{ exitCode: null, error: 'interpreter not found: python3' }, 'failed', 'interpreter not found: python3'],
    [{ exitCode: null, signal: 'SIGTERM', timedOut: true }, 'timed_out', null],
    [{ exitCode: null, signal: 'SIGTERM', cancelled: true }, 'cancelled', null],
    // Cancelled wins over a timeout that raced it, and keeps the agent's reason.
    [{ exitCode: null, cancelled: true, timedOut: true, error: 'agent shutting down' }, 'cancelled', 'agent shutting down'],
  ] as const)('%j -> %s', (over, status, error) => {
    expect(outcome(report(over))).toEqual({ status, error });
  });
});

describe('executions cursor', () => {
  it('round-trips microseconds and refuses anything else', () => {
    const c = Buffer.from(JSON.stringify(['2026-01-02T03:04:05.123456Z', '7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e11'])).toString('base64url');
    expect(decodeExecutionCursor(c)).toEqual({ at: '2026-01-02T03:04:05.123456Z', id: '7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e11' });
    expect(decodeExecutionCursor(undefined)).toBeNull();
    for (const bad of ['x', Buffer.from('["2026-01-02", "7d1f4c2e-8a57-4c8e-9a63-2f0b5f6f1e11"]').toString('base64url'), Buffer.from('[1,2]').toString('base64url')]) {
      expect(() => decodeExecutionCursor(bad)).toThrow('cursor is not valid');
    }
  });
});
