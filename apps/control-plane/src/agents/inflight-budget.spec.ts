import { MAX_MESSAGE_BYTES } from '@app/protocol';
import { estimateBytes, InflightBudget } from './inflight-budget.js';

const limits = { connectionHigh: 1000, connectionLow: 200, processHigh: 1500, processLow: 500 };

function reader() {
  const r = { paused: false, pause: () => (r.paused = true), resume: () => (r.paused = false) };
  return r;
}

describe('estimateBytes', () => {
  it('counts strings and buffers of any message shape, not only output chunks', () => {
    expect(estimateBytes({ executionId: 'x', pad: 'p'.repeat(10_000) })).toBeGreaterThan(10_000);
    expect(estimateBytes({ chunks: [{ data: Buffer.alloc(5000) }] })).toBeGreaterThan(5000);
    expect(estimateBytes({ finished: Array.from({ length: 1000 }, () => ({ executionId: 'a'.repeat(36) })) })).toBeGreaterThan(36_000);
  });

  it('bounds its own work: a message of very many values counts as the largest message', () => {
    expect(estimateBytes(Array.from({ length: 200_000 }, () => 1))).toBe(MAX_MESSAGE_BYTES);
  });
});

describe('InflightGate', () => {
  it('stops reading a connection over its budget, and reads again below the low mark', () => {
    const budget = new InflightBudget(limits);
    const r = reader();
    const gate = budget.gate(() => r);
    const a = gate.enter('x'.repeat(600));
    expect(r.paused).toBe(false);
    const b = gate.enter('x'.repeat(600));
    expect(r.paused).toBe(true);
    gate.leave(a);
    expect(r.paused).toBe(true); // still above the low mark
    gate.leave(b);
    expect(r.paused).toBe(false);
    expect(budget.bytes).toBe(0);
  });

  it('the process-wide budget stops every connection that adds to it, and resumes them together', () => {
    const budget = new InflightBudget(limits);
    const readers = [reader(), reader(), reader()];
    const gates = readers.map((r) => budget.gate(() => r));
    const taken = [gates[0]!.enter('x'.repeat(700)), gates[1]!.enter('x'.repeat(700)), gates[2]!.enter('x'.repeat(100))];
    // Each connection is under its own 1000, the process over 1500: the one that crossed it stops.
    expect(readers.map((r) => r.paused)).toEqual([false, false, true]);
    gates[0]!.leave(taken[0]!);
    expect(readers[2]!.paused).toBe(true); // still above the process low mark
    gates[1]!.leave(taken[1]!);
    expect(readers[2]!.paused).toBe(false);
  });

  it('a closed connection is forgotten', () => {
    const budget = new InflightBudget(limits);
    const r = reader();
    const gate = budget.gate(() => r);
    const n = gate.enter('x'.repeat(2000));
    gate.close();
    gate.leave(n);
    expect(budget.bytes).toBe(0);
  });
});
