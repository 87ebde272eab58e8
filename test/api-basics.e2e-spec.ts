import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { type ControlPlane, startControlPlane } from './support/control-plane.js';
import { Api } from './support/http.js';
import { createTestDatabase, type TestDatabase } from './support/postgres.js';

let db: TestDatabase;
let cp: ControlPlane;
let admin: Api;

beforeAll(async () => {
  db = await createTestDatabase();
  cp = await startControlPlane({ databaseUrl: db.url });
  admin = new Api(cp.url, cp.adminKey);
});

afterAll(async () => {
  await cp?.stop();
  await db?.drop();
});

describe('basics', () => {
  it('answers /health with the database up', async () => {
    expect((await new Api(cp.url).get('/health')).body).toEqual({ status: 'ok' });
    const r = await new Api(cp.url, cp.adminKey).get('/health');
    expect(r.status).toBe(200);
    expect(r.body.info.database.status).toBe('up');
  });

  it('tells the bootstrap key its workspace and role', async () => {
    const r = await admin.get('/api/v1/me');
    expect(r.status).toBe(200);
    expect(r.body.role).toBe('owner');
    expect(r.body.isAdmin).toBe(true);
  });
});
