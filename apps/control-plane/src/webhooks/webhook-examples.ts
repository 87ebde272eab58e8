/** Ready-to-paste ways to call a webhook; with an HMAC secret, every example signs the exact bytes it sends. */
export interface WebhookExamples {
  /** A curl command (with HMAC: a small shell script using openssl to sign). */
  curl: string;
  /** With HMAC only: a Node (18+) ES module that signs and sends. */
  node?: string;
  /** With HMAC only: a Python 3 script (standard library only) that signs and sends. */
  python?: string;
}

/**
 * `token` is the real token when the reader may see it, else a `$WEBHOOK_TOKEN` placeholder.
 * The HMAC secret is never known here: the examples read it from `$WEBHOOK_SECRET`.
 */
export function webhookExamples(publicUrl: string, token: string | null, hmacEnabled: boolean): WebhookExamples {
  const url = `${publicUrl}/api/v1/webhooks/script_execute`;
  if (!hmacEnabled) {
    const data = token ? `'{"token":"${token}"}'` : `"{\\"token\\":\\"$WEBHOOK_TOKEN\\"}"`;
    return { curl: `curl -sS -X POST '${url}' -H 'Content-Type: application/json' -d ${data}` };
  }
  const body = token ? `BODY='{"token":"${token}"}'` : `BODY="{\\"token\\":\\"$WEBHOOK_TOKEN\\"}"`;
  const curl = [
    '# export WEBHOOK_SECRET=<the HMAC secret you chose>',
    body,
    `SIG=$(printf '%s' "$BODY" | openssl dgst -sha256 -hmac "$WEBHOOK_SECRET" -hex | sed 's/^.* //')`,
    `curl -sS -X POST '${url}' -H 'Content-Type: application/json' -H "X-Webhook-Signature: sha256=$SIG" --data-binary "$BODY"`,
  ].join('\n');
  const nodeToken = token ? `'${token}'` : 'process.env.WEBHOOK_TOKEN';
  const node = [
    '// trigger.mjs; run with WEBHOOK_SECRET=<the HMAC secret> node trigger.mjs',
    "import { createHmac } from 'node:crypto';",
    `const body = JSON.stringify({ token: ${nodeToken} });`,
    "const signature = createHmac('sha256', process.env.WEBHOOK_SECRET).update(body).digest('hex');",
    `const res = await fetch('${url}', {`,
    "  method: 'POST',",
    "  headers: { 'Content-Type': 'application/json', 'X-Webhook-Signature': `sha256=${signature}` },",
    '  body, // sign and send the very same bytes',
    '});',
    'console.log(res.status, await res.text());',
  ].join('\n');
  const pyToken = token ? `"${token}"` : 'os.environ["WEBHOOK_TOKEN"]';
  const python = [
    '# trigger.py; run with WEBHOOK_SECRET=<the HMAC secret> python3 trigger.py',
    'import hashlib, hmac, json, os, urllib.error, urllib.request',
    `body = json.dumps({"token": ${pyToken}}).encode()`,
    'signature = hmac.new(os.environ["WEBHOOK_SECRET"].encode(), body, hashlib.sha256).hexdigest()',
    'req = urllib.request.Request(',
    `    "${url}", data=body, method="POST",`,
    '    headers={"Content-Type": "application/json", "X-Webhook-Signature": "sha256=" + signature})',
    'try:',
    '    with urllib.request.urlopen(req) as res:',
    '        print(res.status, res.read().decode())',
    'except urllib.error.HTTPError as e:',
    '    print(e.code, e.read().decode())',
  ].join('\n');
  return { curl, node, python };
}
