import type { SignatureScheme } from './webhook-signature.js';

/** Ready-to-paste ways to call a webhook; with a secret, every example signs the exact bytes it sends. */
export interface WebhookExamples {
  /** A curl command (with a secret: a small shell script using openssl to sign). */
  curl: string;
  /** A Node (18+) ES module that (signs and) sends. */
  node: string;
  /** A Python 3 script (standard library only) that (signs and) sends. */
  python: string;
}

/** How one scheme signs, in each language: statements that set the headers from BODY and the secret. */
interface Signer {
  sh: string[];
  shHeaders: string[];
  node: string[];
  nodeHeaders: string;
  py: string[];
  pyHeaders: string;
}

const SH_HMAC = (data: string) => `$(printf ${data} | openssl dgst -sha256 -hmac "$WEBHOOK_SECRET" -hex | sed 's/^.* //')`;

const SIGNERS: Record<SignatureScheme, Signer> = {
  devpilot: {
    sh: [`SIG=${SH_HMAC(`'%s' "$BODY"`)}`],
    shHeaders: [`-H "X-Webhook-Signature: sha256=$SIG"`],
    node: ["const sig = createHmac('sha256', process.env.WEBHOOK_SECRET).update(body).digest('hex');"],
    nodeHeaders: "'X-Webhook-Signature': `sha256=${sig}`",
    py: ['sig = hmac.new(os.environ["WEBHOOK_SECRET"].encode(), body, hashlib.sha256).hexdigest()'],
    pyHeaders: '"X-Webhook-Signature": "sha256=" + sig',
  },
  github: {
    sh: [`SIG=${SH_HMAC(`'%s' "$BODY"`)}`],
    shHeaders: [`-H "X-Hub-Signature-256: sha256=$SIG"`, `-H 'X-GitHub-Event: push'`, `-H "X-GitHub-Delivery: $(openssl rand -hex 16)"`],
    node: ["const sig = createHmac('sha256', process.env.WEBHOOK_SECRET).update(body).digest('hex');"],
    nodeHeaders: "'X-Hub-Signature-256': `sha256=${sig}`, 'X-GitHub-Event': 'push', 'X-GitHub-Delivery': randomUUID()",
    py: ['sig = hmac.new(os.environ["WEBHOOK_SECRET"].encode(), body, hashlib.sha256).hexdigest()'],
    pyHeaders: '"X-Hub-Signature-256": "sha256=" + sig, "X-GitHub-Event": "push", "X-GitHub-Delivery": str(uuid.uuid4())',
  },
  gitlab: {
    sh: [],
    shHeaders: [`-H "X-Gitlab-Token: $WEBHOOK_SECRET"`, `-H 'X-Gitlab-Event: Push Hook'`, `-H "X-Gitlab-Event-UUID: $(openssl rand -hex 16)"`],
    node: [],
    nodeHeaders: "'X-Gitlab-Token': process.env.WEBHOOK_SECRET, 'X-Gitlab-Event': 'Push Hook', 'X-Gitlab-Event-UUID': randomUUID()",
    py: [],
    pyHeaders: '"X-Gitlab-Token": os.environ["WEBHOOK_SECRET"], "X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": str(uuid.uuid4())',
  },
  slack: {
    sh: ['TS=$(date +%s)', `SIG=${SH_HMAC(`'v0:%s:%s' "$TS" "$BODY"`)}`],
    shHeaders: [`-H "X-Slack-Request-Timestamp: $TS"`, `-H "X-Slack-Signature: v0=$SIG"`],
    node: [
      'const ts = String(Math.floor(Date.now() / 1000));',
      "const sig = createHmac('sha256', process.env.WEBHOOK_SECRET).update(`v0:${ts}:${body}`).digest('hex');",
    ],
    nodeHeaders: "'X-Slack-Request-Timestamp': ts, 'X-Slack-Signature': `v0=${sig}`",
    py: ['ts = str(int(time.time()))', 'sig = hmac.new(os.environ["WEBHOOK_SECRET"].encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()'],
    pyHeaders: '"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + sig',
  },
  'standard-webhooks': {
    sh: [
      'ID=msg_$(openssl rand -hex 12); TS=$(date +%s)',
      `KEY=$(printf '%s' "\${WEBHOOK_SECRET#whsec_}" | base64 -d | od -An -tx1 | tr -d ' \\n')`,
      `SIG=$(printf '%s.%s.%s' "$ID" "$TS" "$BODY" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$KEY" -binary | base64)`,
    ],
    shHeaders: [`-H "webhook-id: $ID"`, `-H "webhook-timestamp: $TS"`, `-H "webhook-signature: v1,$SIG"`],
    node: [
      "const id = `msg_${randomUUID()}`, ts = String(Math.floor(Date.now() / 1000));",
      "const key = Buffer.from(process.env.WEBHOOK_SECRET.replace(/^whsec_/, ''), 'base64');",
      "const sig = createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64');",
    ],
    nodeHeaders: "'webhook-id': id, 'webhook-timestamp': ts, 'webhook-signature': `v1,${sig}`",
    py: [
      'msg_id, ts = "msg_" + uuid.uuid4().hex, str(int(time.time()))',
      'key = base64.b64decode(os.environ["WEBHOOK_SECRET"].removeprefix("whsec_"))',
      'sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()',
    ],
    pyHeaders: '"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": "v1," + sig',
  },
};

/**
 * `token` is the real token when the reader may see it, else a `$WEBHOOK_TOKEN` placeholder. The
 * secret is never known here: the examples read it from `$WEBHOOK_SECRET`. The `devpilot` scheme
 * sends the token in the JSON body (the seed form); the senders' schemes put it in the path, as
 * those senders do, and send a small payload of their kind.
 */
export function webhookExamples(publicUrl: string, token: string | null, hmacEnabled: boolean, scheme: SignatureScheme = 'devpilot'): WebhookExamples {
  const inBody = scheme === 'devpilot';
  const base = `${publicUrl}/api/v1/webhooks/script_execute`;
  const signer = hmacEnabled ? SIGNERS[scheme] : null;
  const form = scheme === 'slack';
  const type = form ? 'application/x-www-form-urlencoded' : 'application/json';
  // Slack has no delivery id: each request of a real slash command differs (its trigger_id), so
  // the examples' do too, else two sent within a second would be one delivery.
  const payload = form ? 'command=/deploy&text=main' : '{"ref":"refs/heads/main"}';
  const shPayload = form ? `"${payload}&trigger_id=$(openssl rand -hex 8)"` : `'${payload}'`;
  const nodePayload = form ? `\`${payload}&trigger_id=\${randomUUID()}\`` : `'${payload}'`;
  const pyPayload = form ? `b"${payload}&trigger_id=" + uuid.uuid4().hex.encode()` : `b'${payload}'`;

  const shUrl = inBody ? `'${base}'` : token ? `'${base}/${token}'` : `"${base}/$WEBHOOK_TOKEN"`;
  const shBody = inBody ? (token ? `BODY='{"token":"${token}"}'` : `BODY="{\\"token\\":\\"$WEBHOOK_TOKEN\\"}"`) : `BODY=${shPayload}`;
  const curl = [
    ...(signer ? ['# export WEBHOOK_SECRET=<the webhook’s secret>'] : []),
    shBody,
    ...(signer?.sh ?? []),
    [`curl -sS -X POST ${shUrl}`, `-H 'Content-Type: ${type}'`, ...(signer?.shHeaders ?? []), `--data-binary "$BODY"`].join(' '),
  ].join('\n');

  const nodeToken = token ? `'${token}'` : 'process.env.WEBHOOK_TOKEN';
  const nodeImports = signer || form ? ["import { createHmac, randomUUID } from 'node:crypto';"] : [];
  const node = [
    `// trigger.mjs; run with${signer ? ' WEBHOOK_SECRET=<the webhook’s secret>' : ''}${token ? '' : ' WEBHOOK_TOKEN=<the token>'} node trigger.mjs`,
    ...nodeImports,
    inBody ? `const body = JSON.stringify({ token: ${nodeToken} });` : `const body = ${nodePayload};`,
    ...(signer?.node ?? []),
    inBody ? `const res = await fetch('${base}', {` : `const res = await fetch(\`${base}/\${${nodeToken}}\`, {`,
    "  method: 'POST',",
    `  headers: { 'Content-Type': '${type}'${signer ? `, ${signer.nodeHeaders}` : ''} },`,
    '  body, // sign and send the very same bytes',
    '});',
    'console.log(res.status, await res.text());',
  ].join('\n');

  const pyToken = token ? `"${token}"` : 'os.environ["WEBHOOK_TOKEN"]';
  const python = [
    `# trigger.py; run with${signer ? ' WEBHOOK_SECRET=<the webhook’s secret>' : ''}${token ? '' : ' WEBHOOK_TOKEN=<the token>'} python3 trigger.py`,
    'import base64, hashlib, hmac, json, os, time, urllib.error, urllib.request, uuid',
    inBody ? `body = json.dumps({"token": ${pyToken}}).encode()` : `body = ${pyPayload}`,
    ...(signer?.py ?? []),
    'req = urllib.request.Request(',
    `    ${inBody ? `"${base}"` : `"${base}/" + ${pyToken}`}, data=body, method="POST",`,
    `    headers={"Content-Type": "${type}"${signer ? `, ${signer.pyHeaders}` : ''}})`,
    'try:',
    '    with urllib.request.urlopen(req) as res:',
    '        print(res.status, res.read().decode())',
    'except urllib.error.HTTPError as e:',
    '    print(e.code, e.read().decode())',
  ].join('\n');
  return { curl, node, python };
}
