export default async function globalTeardown() {
  await globalThis.__devpilotEmbeddedPg?.stop();
}
