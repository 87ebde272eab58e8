import { Inject, Injectable, Logger } from '@nestjs/common';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { APP_CONFIG, type AppConfig, readMasterKeyFile } from '../config/app-config.js';

const FORMAT_V1 = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * AES-256-GCM for secrets at rest (webhook tokens, HMAC secrets). The master key comes from
 * DEVPILOT_MASTER_KEY or a key file created once in the data directory with mode 0600.
 * Sealed format: version byte, 12-byte IV, 16-byte tag, ciphertext. `purpose` is bound as
 * associated data, so a value sealed as one kind of secret cannot be opened as another.
 */
@Injectable()
export class SecretsService {
  private readonly logger = new Logger(SecretsService.name);
  private readonly key: Buffer;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.key = config.masterKey ?? this.keyFromFile(config.dataDir);
  }

  seal(plaintext: string, purpose: string): Buffer {
    return this.sealBytes(Buffer.from(plaintext, 'utf8'), purpose);
  }

  open(sealed: Buffer, purpose: string): string {
    return this.openBytes(sealed, purpose).toString('utf8');
  }

  /** seal() for bytes that need not be text (a request body kept for its run). */
  sealBytes(plaintext: Buffer, purpose: string): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(purpose));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([Buffer.from([FORMAT_V1]), iv, cipher.getAuthTag(), body]);
  }

  openBytes(sealed: Buffer, purpose: string): Buffer {
    if (sealed[0] !== FORMAT_V1) throw new Error('unknown sealed secret format');
    const iv = sealed.subarray(1, 1 + IV_BYTES);
    const tag = sealed.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
    const decipher = createDecipheriv('aes-256-gcm', this.key, iv);
    decipher.setAAD(Buffer.from(purpose));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(sealed.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]);
  }

  private keyFromFile(dataDir: string): Buffer {
    const file = path.join(dataDir, 'master.key');
    if (!existsSync(file)) {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      // 'wx': never overwrite a key another process wrote first.
      try {
        writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
        this.logger.log(`created master key file ${file}; back it up: without it stored secrets cannot be read`);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
    return readMasterKeyFile(file);
  }
}
