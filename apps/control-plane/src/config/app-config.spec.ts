import { describe, expect, it } from '@jest/globals';
import { ConfigError, defaultPoolSize, loadConfig } from './app-config.js';

describe('loadConfig', () => {
  it('sizes the database pool by the cores unless told: 3 per core, 6 to 20', () => {
    expect([1, 2, 4, 8, 64].map((cores) => defaultPoolSize(cores))).toEqual([6, 6, 12, 20, 20]);
    expect(loadConfig({}).dbPoolSize).toBe(defaultPoolSize());
    expect(loadConfig({ DEVPILOT_DB_POOL_SIZE: '3' }).dbPoolSize).toBe(3);
    expect(loadConfig({ DEVPILOT_DB_POOL_SIZE: '' }).dbPoolSize).toBe(defaultPoolSize());
  });

  it('names the variable of a wrong value', () => {
    expect(() => loadConfig({ DEVPILOT_DB_POOL_SIZE: '0' })).toThrow(ConfigError);
    expect(() => loadConfig({ DEVPILOT_REPORT_GRACE_SECONDS: 'soon' })).toThrow(/DEVPILOT_REPORT_GRACE_SECONDS/);
  });
});
