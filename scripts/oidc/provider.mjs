// A real OIDC token endpoint for the SASL/OAUTHBEARER tests, on loopback: the npm package
// oauth2-mock-server with client authentication added (the package alone accepts any secret).
//   - serves the client_credentials grant only, and checks each client's id and secret (HTTP Basic, as
//     librdkafka sends them, or client_id/client_secret in the form): a wrong one gets
//     401 {"error":"invalid_client"};
//   - grants only the scopes a client is registered with (others: 400 {"error":"invalid_scope"});
//   - signs RS256 JWTs with iss, sub (= client id), aud (the client's, or ?audience= on the token URL),
//     scope, iat, nbf, exp; publishes the public key at /jwks;
//   - keeps its key in a file, so a restart serves the same key.
// Environment: OIDC_PORT, OIDC_CLIENTS ("id:secret:aud:scope,scope ..."; no scopes: any scope),
// OIDC_KEY_FILE, OIDC_ISSUER (default http(s)://127.0.0.1:PORT), OIDC_TOKEN_TTL (seconds, default
// 3600), OIDC_TLS_KEY and OIDC_TLS_CERT (PEM files: serve https).
import { OAuth2Server } from 'oauth2-mock-server';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const port = Number(process.env.OIDC_PORT);
const ttl = Number(process.env.OIDC_TOKEN_TTL || 3600);
const keyFile = process.env.OIDC_KEY_FILE;
const clients = new Map(process.env.OIDC_CLIENTS.trim().split(/\s+/).map((c) => {
  const [id, secret, aud, scopes] = c.split(':');
  return [id, { secret, aud, scopes: scopes ? scopes.split(',') : null }];
}));

// RFC 6749 2.3.1: HTTP Basic (librdkafka sends the id and secret as they are, not form-encoded) or
// client_id/client_secret in the form body.
function credentials(req) {
  const h = req.headers.authorization || '';
  if (/^basic /i.test(h)) {
    const s = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
    const i = s.indexOf(':');
    if (i >= 0) return { id: s.slice(0, i), secret: s.slice(i + 1), basic: true };
  }
  return { id: req.body?.client_id, secret: req.body?.client_secret };
}
function formDecode(s) { try { return decodeURIComponent(s.replace(/\+/g, ' ')); } catch { return s; } }
function authenticated(req) {
  const c = credentials(req);
  if (typeof c.id !== 'string' || typeof c.secret !== 'string') return null;
  const ids = c.basic ? [c.id, formDecode(c.id)] : [c.id];
  for (const id of ids) {
    const reg = clients.get(id);
    if (reg && (c.secret === reg.secret || (c.basic && formDecode(c.secret) === reg.secret))) return { id, ...reg };
  }
  return null;
}
function refusedScope(req, client) {
  const asked = (req.body?.scope || '').split(' ').filter(Boolean);
  return client.scopes ? asked.find((s) => !client.scopes.includes(s)) : undefined;
}

const tls = process.env.OIDC_TLS_KEY ? [process.env.OIDC_TLS_KEY, process.env.OIDC_TLS_CERT] : [];
const server = new OAuth2Server(...tls);
if (keyFile && existsSync(keyFile)) {
  await server.issuer.keys.add(JSON.parse(readFileSync(keyFile, 'utf8')));
} else {
  await server.issuer.keys.generate('RS256');
  if (keyFile) writeFileSync(keyFile, JSON.stringify(server.issuer.keys.toJSON(true)[0]), { mode: 0o600 });
}
server.issuer.url = process.env.OIDC_ISSUER || `${tls.length ? 'https' : 'http'}://127.0.0.1:${port}`;

server.service.on('beforeTokenSigning', (token, req) => {
  const c = authenticated(req);
  if (!c) return;
  token.payload.sub = c.id;
  token.payload.client_id = c.id;
  const asked = new URL(req.originalUrl ?? req.url, 'http://127.0.0.1').searchParams.get('audience');
  token.payload.aud = asked ?? c.aud;
  token.payload.exp = token.payload.iat + ttl;
});
server.service.on('beforeResponse', (res, req) => {
  const c = authenticated(req);
  if (req.body?.grant_type !== 'client_credentials') {
    res.statusCode = 400;
    res.body = { error: 'unsupported_grant_type', error_description: 'only client_credentials is served' };
  } else if (!c) {
    res.statusCode = 401;
    res.body = { error: 'invalid_client', error_description: 'client authentication failed' };
  } else if (refusedScope(req, c)) {
    res.statusCode = 400;
    res.body = { error: 'invalid_scope', error_description: `scope ${refusedScope(req, c)} is not granted to this client` };
  } else {
    res.body.expires_in = ttl;
  }
  console.log(`${new Date().toISOString()} token ${credentials(req).id ?? '-'} -> ${res.statusCode}`);
});

await server.start(port, '127.0.0.1');
console.log(`${new Date().toISOString()} OIDC provider ${server.issuer.url} on port ${port} (token /token, JWKS /jwks)`);
// Exit at once: a graceful close would wait for the broker's keep-alive JWKS connection.
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => process.exit(0));
