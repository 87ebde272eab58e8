import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { SecretMask } from './secret-mask.js';

/** Feeds `pieces` through one mask and returns everything it let out. */
const through = (values: string[], pieces: (string | Buffer)[]) => {
  const m = new SecretMask(values);
  const out = pieces.map((p) => m.write(Buffer.isBuffer(p) ? p : Buffer.from(p)));
  out.push(m.end());
  return Buffer.concat(out).toString('utf8');
};

describe('SecretMask', () => {
  it('masks a whole value, every time it appears', () => {
    expect(through(['hunter22'], ['pw=hunter22; again hunter22\n'])).toBe('pw=***; again ***\n');
  });

  it('masks a value split across writes, byte by byte too', () => {
    expect(through(['s3cr3t-value'], ['x s3cr', '3t-va', 'lue y'])).toBe('x *** y');
    expect(through(['s3cr3t-value'], [...'a s3cr3t-value b'].map((c) => c))).toBe('a *** b');
  });

  it('passes output through unchanged, and holds back only what may start a value', () => {
    const m = new SecretMask(['password1']);
    expect(m.write(Buffer.from('plain line\n')).toString()).toBe('plain line\n');
    expect(m.write(Buffer.from('ends with pass')).toString()).toBe('ends with ');
    expect(m.write(Buffer.from('port\n')).toString()).toBe('passport\n');
    expect(m.end().length).toBe(0);
  });

  it('leaves values shorter than 6 bytes alone, and masks the longest of overlapping values', () => {
    expect(through(['abc12', 'token-123456', 'token-1234567890'], ['abc12 token-1234567890 token-123456'])).toBe('abc12 *** ***');
  });

  it('keeps binary output byte for byte', () => {
    const bin = Buffer.from([0, 255, 1, 254, 10, 13]);
    const m = new SecretMask(['secret-value']);
    expect(Buffer.concat([m.write(bin), m.end()]).equals(bin)).toBe(true);
  });

  it('never lets a value through, however the output is cut (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 6, maxLength: 20 }).filter((s) => !s.includes('*') && Buffer.byteLength(s) >= 6),
        fc.array(fc.string({ maxLength: 12 }), { maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 10 }),
        (secret, noise, cuts) => {
          const text = noise.join(secret);
          const bytes = Buffer.from(`${secret}${text}${secret}`);
          const pieces: Buffer[] = [];
          let at = 0;
          for (let i = 0; at < bytes.length; i++) {
            const n = cuts[i % cuts.length]!;
            pieces.push(bytes.subarray(at, at + n));
            at += n;
          }
          const out = through([secret], pieces);
          expect(out.includes(secret)).toBe(false);
          // The same as masking the whole output at once: nothing else changed, wherever the cuts fell.
          expect(out).toBe(bytes.toString('utf8').split(secret).join('***'));
        },
      ),
      { numRuns: 300 },
    );
  });
});
