// A real OpenID provider (npm oidc-provider) for the airflow-oidc end-to-end tests.
//
// Usage: node server.js <config.json>
//
// The config (written by localdev/harness/provider.py) holds one client, the
// scope -> claims map, the users and optional negative-control "shims". The
// provider listens on 127.0.0.1 (port 0 = any free port) and is mounted under
// `issuerPath`, so the issuer is http://127.0.0.1:<port><issuerPath>, like a
// real tenant issuer such as https://example.okta.com/oauth2/aus1abc.
//
// IdP-side groups (config `idpGroups`, optional): each user's `groups` is then their raw group
// membership at the IdP, never emitted as such. The claim `idpGroups.claim` carries those groups
// matching `idpGroups.filter` (a regex, e.g. Okta's `^(a|b)$` groups-claim filter), or all of them
// when the filter is null. With `idpGroups.assignedGroups` (Okta's app assignments), a user in
// none of them is refused at the provider's login form, as Okta refuses unassigned users: the
// browser returns to the client with error=access_denied. With `idpGroups.claimValues` (group ->
// values), the claim carries the values of the user's groups instead of their names, and is left
// out when there are none (Entra: the `roles` claim holds the app roles assigned to the groups;
// Okta: raw groups are group ids, and the values of the ids its getFilteredGroups claim selects
// are their names). `idpGroups.limit` caps how many of the user's groups count (getFilteredGroups').
//
// The signing key is kept in `keyFile` (created on first start), so a restarted provider signs
// with the key relying parties already cached.
//
// A second listener (loopback only) is a tiny admin API:
//   GET  /health                -> {"ok": true}
//   GET  /users                 -> the users map
//   PUT  /users/<accountId>     -> replace one user's claims (body: claims object)
//   POST /users                 -> replace all users (body: {accountId: claims})
//   GET  /shims, POST /shims    -> read / replace the shim settings
//
// Shims are a koa middleware wrapped around every provider route: the real provider answers,
// then the discovery document, the JWKS, the token response (ID tokens re-signed with the
// provider's own key, or with a key it never published) or the redirect back to the client is
// altered. See Shims in provider.py.
//
// When both listeners are up, one line is printed to stdout:
//   OIDC-PROVIDER-READY {"issuer": ..., "port": ..., "adminPort": ...}

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { randomUUID } from 'node:crypto';

import * as jose from 'jose';
import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

const host = config.host ?? '127.0.0.1';
const issuerPath = (config.issuerPath ?? '').replace(/\/+$/, '');
let users = config.users ?? {};
let shims = config.shims ?? {};
const idpGroups = config.idpGroups ?? null;
// Okta's "matches regex" filter matches whole group names (Java's String.matches).
const groupsFilter = idpGroups?.filter ? new RegExp(`^(?:${idpGroups.filter})$`) : null;

function log(message, extra = {}) {
  process.stdout.write(`${new Date().toISOString()} ${message} ${JSON.stringify(extra)}\n`);
}

// Our own signing key (instead of oidc-provider's dev keystore) so the shims
// can re-sign ID tokens with the very key the provider publishes.
const KID = 'e2e-signing-key';
async function loadSigningKey() {
  if (config.keyFile && existsSync(config.keyFile)) {
    const jwk = JSON.parse(readFileSync(config.keyFile, 'utf8'));
    return { privateKey: await jose.importJWK(jwk, 'RS256'), jwk };
  }
  const pair = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await jose.exportJWK(pair.privateKey)), kid: KID, use: 'sig', alg: 'RS256' };
  if (config.keyFile) writeFileSync(config.keyFile, JSON.stringify(jwk), { mode: 0o600 });
  return { privateKey: pair.privateKey, jwk };
}
const { privateKey: signingKey, jwk: signingJwk } = await loadSigningKey();
const signing = { privateKey: signingKey };
// A key the provider never publishes. signWithUnpublishedKey re-signs ID tokens with it (an
// attacker's forgery); publishWrongJwks publishes it instead of the real key.
const decoy = await jose.generateKeyPair('RS256', { extractable: true });
const decoyPublicJwk = { ...(await jose.exportJWK(decoy.publicKey)), kid: KID, use: 'sig', alg: 'RS256' };

function assigned(id) {
  if (!idpGroups?.assignedGroups) return Object.hasOwn(users, id);
  const member = new Set(users[id]?.groups ?? []);
  return Object.hasOwn(users, id) && idpGroups.assignedGroups.some((group) => member.has(group));
}

// The claims the IdP emits for a user: with idpGroups, `groups` is membership, not a claim.
function emittedClaims(id) {
  const { groups, ...profile } = users[id] ?? {};
  if (!idpGroups) return users[id] ?? {};
  const raw = groups ?? [];
  if (idpGroups.claimValues) {
    const selected = raw.filter((g) => Object.hasOwn(idpGroups.claimValues, g)).slice(0, idpGroups.limit ?? undefined);
    const values = [...new Set(selected.flatMap((g) => idpGroups.claimValues[g]))].sort();
    return values.length ? { ...profile, [idpGroups.claim]: values } : profile;
  }
  return { ...profile, [idpGroups.claim]: groupsFilter ? raw.filter((g) => groupsFilter.test(g)) : raw };
}

async function findAccount(ctx, id) {
  if (!Object.hasOwn(users, id)) {
    log('findAccount: unknown account', { id });
    return undefined;
  }
  return {
    accountId: id,
    // Read the users map at claim time, so a change made through the admin
    // API shows in the next token or userinfo response.
    async claims() {
      return { ...emittedClaims(id), sub: id };
    },
  };
}

async function loadExistingGrant(ctx) {
  const grantId = ctx.oidc.result?.consent?.grantId
    || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
  if (grantId) {
    return ctx.oidc.provider.Grant.find(grantId);
  }
  if (config.autoConsent === false) {
    return undefined;
  }
  // The pattern from the oidc-provider docs for first-party clients: grant
  // whatever was asked, so the browser never sees the consent page.
  const grant = new ctx.oidc.provider.Grant({
    clientId: ctx.oidc.client.clientId,
    accountId: ctx.oidc.session.accountId,
  });
  grant.addOIDCScope([...ctx.oidc.requestParamScopes].join(' '));
  grant.addOIDCClaims([...ctx.oidc.requestParamClaims]);
  await grant.save();
  return grant;
}

const client = config.client;
// Machine clients (service accounts): client credentials only, no redirect URIs, no user. Their
// access tokens are JWTs (RFC 9068) for a resource server named by the RFC 8707 `resource`
// parameter: `resourceServers` maps each accepted resource (the token's `aud`) to its scope and TTL.
const machineClients = config.machineClients ?? [];
const resourceServers = config.resourceServers ?? {};
let oidc; // built once the listener knows its port (the issuer includes it)

function buildProvider(port) {
  const issuer = `http://${host}:${port}${issuerPath}`;
  const oidc = new Provider(issuer, {
    clients: [{
      client_id: client.client_id,
      client_secret: client.client_secret,
      redirect_uris: client.redirect_uris,
      post_logout_redirect_uris: client.post_logout_redirect_uris ?? [],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      // Authlib (FAB's OAuth client) sends client_secret_basic unless the
      // provider's client_kwargs say otherwise.
      token_endpoint_auth_method: client.token_endpoint_auth_method ?? 'client_secret_basic',
    }, ...machineClients.map((machine) => ({
      client_id: machine.client_id,
      client_secret: machine.client_secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    }))],
    claims: config.claims ?? { openid: ['sub'] },
    // Okta's access tokens name the client in `cid` and the granted scopes in `scp` (a list).
    extraTokenClaims: async (ctx, token) => (config.accessTokenProfile === 'okta' && token.kind === 'ClientCredentials'
      ? { cid: token.clientId, scp: (token.scope ?? '').split(' ').filter(Boolean) }
      : undefined),
    conformIdTokenClaims: config.conformIdTokenClaims ?? true,
    findAccount,
    loadExistingGrant,
    jwks: { keys: [signingJwk] },
    cookies: { keys: [randomUUID()] },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      clientCredentials: { enabled: machineClients.length > 0 },
      resourceIndicators: {
        enabled: machineClients.length > 0,
        // No `resource` (the browser sign-in): no resource server, an opaque token for userinfo, as before.
        // Okta's client-credentials requests name no resource: its server's audience is the default.
        defaultResource: async (ctx, requestClient, oneOf) => oneOf
          ?? (machineClients.some((m) => m.client_id === requestClient?.clientId) ? config.defaultMachineResource : undefined)
          ?? undefined,
        getResourceServerInfo: async (ctx, resourceIndicator) => {
          const server = resourceServers[resourceIndicator];
          if (!server) throw new errors.InvalidTarget();
          return {
            scope: server.scope ?? 'api',
            audience: resourceIndicator,
            accessTokenTTL: server.ttl ?? 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 600,
      IdToken: 3600,
      Interaction: 3600,
      Session: 86400,
      Grant: 86400,
    },
  });
  oidc.on('server_error', (ctx, err) => log('server_error', { path: ctx.path, err: String(err) }));
  oidc.on('grant.error', (ctx, err) => log('grant.error', { err: String(err), detail: err.error_description }));
  oidc.on('authorization.error', (ctx, err) => log('authorization.error', { err: String(err), detail: err.error_description }));
  oidc.use(refuseUnassigned);
  oidc.use(shimMiddleware);
  oidc.use(accessLog);
  return oidc;
}

// The dev interactions' login form posts {prompt: 'login', login: <account id>} to
// /interaction/<uid>. An unassigned user ends the interaction with access_denied, which the
// provider sends back to the client's redirect URI (what Okta does). The parsed body is left on
// ctx.request.body, where oidc-provider's own body parser picks it up.
async function refuseUnassigned(ctx, next) {
  if (idpGroups?.assignedGroups && ctx.method === 'POST' && /^\/interaction\/[^/]+$/.test(ctx.path)) {
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    const body = Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString('utf8')));
    ctx.request.body = body;
    if (body.prompt === 'login' && !assigned(body.login)) {
      log('refused: user is not assigned to the client application', { login: body.login });
      await oidc.interactionFinished(ctx.req, ctx.res, {
        error: 'access_denied',
        error_description: 'User is not assigned to the client application.',
      }, { mergeWithLastSubmission: false });
      ctx.respond = false;
      return;
    }
  }
  await next();
}

async function accessLog(ctx, next) {
  await next();
  log('request', { method: ctx.method, path: ctx.path, status: ctx.status, route: ctx.oidc?.route });
}

// Re-sign an ID token with the provider's real key after applying `mutate`
// to its claims: the relying party must still refuse it on the claim checks.
async function resign(idToken, mutate, { alg = 'RS256', key = signing.privateKey, kid } = {}) {
  const header = jose.decodeProtectedHeader(idToken);
  const payload = { ...jose.decodeJwt(idToken) };
  mutate(payload);
  if (alg === 'none') {
    const enc = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
    return `${enc({ alg: 'none', typ: header.typ ?? 'JWT' })}.${enc(payload)}.`;
  }
  return new jose.SignJWT(payload).setProtectedHeader({ ...header, kid: kid ?? header.kid }).sign(key);
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

// Negative-control shims: the real provider does everything, then this layer
// alters the discovery document, the JWKS or the token endpoint response.
async function shimMiddleware(ctx, next) {
  await next();
  const route = ctx.oidc?.route;
  if (route === 'jwks' && shims.publishWrongJwks && ctx.status === 200) {
    ctx.body = { keys: [decoyPublicJwk] };
    log('shim: published the decoy JWKS');
  }
  if (route === 'discovery' && shims.discoveryIssuer && ctx.status === 200) {
    ctx.body = { ...ctx.body, issuer: shims.discoveryIssuer };
    log('shim: rewrote discovery issuer', { issuer: shims.discoveryIssuer });
  }
  if (route === 'discovery' && shims.discoveryFields && ctx.status === 200) {
    // Replace fields of the discovery document; a null value removes the field.
    const body = { ...ctx.body, ...shims.discoveryFields };
    for (const [key, value] of Object.entries(shims.discoveryFields)) if (value === null) delete body[key];
    ctx.body = body;
    log('shim: rewrote discovery fields', { fields: Object.keys(shims.discoveryFields) });
  }
  if (shims.dateOffsetSeconds) {
    // A provider whose clock is off: only the Date header moves (tokens keep the real time).
    ctx.set('Date', new Date(Date.now() + shims.dateOffsetSeconds * 1000).toUTCString());
  }
  if (shims.tamperState) {
    // The redirect back to the client (code and state in its query): change the state's last character.
    const location = ctx.response.get('Location');
    if (location && (client.redirect_uris ?? []).some((uri) => location.startsWith(uri))) {
      const url = new URL(location);
      const state = url.searchParams.get('state');
      if (state) {
        url.searchParams.set('state', state.slice(0, -1) + (state.endsWith('x') ? 'y' : 'x'));
        ctx.response.set('Location', url.href);
        log('shim: tampered the state on the way back', { route });
      }
    }
  }
  if (route === 'token' && ctx.status === 200 && ctx.body?.id_token) {
    const mutations = [];
    if (shims.wrongAudience) {
      const aud = typeof shims.wrongAudience === 'string' ? shims.wrongAudience : `not-${client.client_id}`;
      mutations.push((p) => { p.aud = aud; });
    }
    if (shims.wrongIssuer) {
      const iss = typeof shims.wrongIssuer === 'string' ? shims.wrongIssuer : `${oidc.issuer}-evil`;
      mutations.push((p) => { p.iss = iss; });
    }
    if (shims.expiredIdToken) {
      mutations.push((p) => { p.iat = nowSeconds() - 7200; p.exp = nowSeconds() - 3600; });
    }
    if (shims.wrongNonce) {
      mutations.push((p) => { p.nonce = `forged-${randomUUID()}`; });
    }
    if (shims.idTokenClaims) {
      mutations.push((p) => { Object.assign(p, shims.idTokenClaims); });
    }
    const options = { alg: shims.unsignedIdToken ? 'none' : 'RS256' };
    if (shims.signWithUnpublishedKey) {
      // Done here rather than by publishing another JWKS: relying parties cache the JWKS, so
      // this also works against an api-server that already verified a genuine token.
      options.key = decoy.privateKey;
      options.kid = shims.signWithUnpublishedKey === 'otherKid' ? 'unpublished-key' : KID;
    }
    if (mutations.length || options.alg === 'none' || options.key) {
      ctx.body = {
        ...ctx.body,
        id_token: await resign(ctx.body.id_token, (p) => mutations.forEach((m) => m(p)), options),
      };
      log('shim: rewrote the id_token', { shims });
    }
  }
}


function mountedCallback() {
  const callback = oidc.callback();
  return (req, res) => {
    if (issuerPath) {
      const url = req.url ?? '/';
      const rest = url.slice(issuerPath.length);
      if (!url.startsWith(issuerPath) || (rest && !rest.startsWith('/') && !rest.startsWith('?'))) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not under the issuer path\n');
        return;
      }
      // What express does when mounting: oidc-provider derives the mount path
      // from originalUrl minus url, and builds its endpoint URLs from it.
      req.originalUrl = url;
      req.url = rest.startsWith('/') ? rest : `/${rest}`;
    }
    callback(req, res);
  };
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
}

async function admin(req, res) {
  const reply = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
  };
  try {
    const { pathname } = new URL(req.url, 'http://admin');
    const userMatch = pathname.match(/^\/users\/([^/]+)$/);
    if (req.method === 'GET' && pathname === '/health') return reply(200, { ok: true, issuer: oidc.issuer });
    if (req.method === 'GET' && pathname === '/users') return reply(200, users);
    if (req.method === 'POST' && pathname === '/users') {
      users = await readJson(req);
      log('admin: replaced users', { accounts: Object.keys(users) });
      return reply(200, users);
    }
    if (req.method === 'PUT' && userMatch) {
      const id = decodeURIComponent(userMatch[1]);
      users = { ...users, [id]: await readJson(req) };
      log('admin: set user claims', { id, claims: users[id] });
      return reply(200, users[id]);
    }
    if (req.method === 'GET' && pathname === '/shims') return reply(200, shims);
    if (req.method === 'POST' && pathname === '/shims') {
      shims = await readJson(req);
      log('admin: replaced shims', { shims });
      return reply(200, shims);
    }
    return reply(404, { error: 'not found' });
  } catch (err) {
    return reply(400, { error: String(err) });
  }
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server.address().port));
  });
}

const main = http.createServer();
const port = await listen(main, config.port ?? 0);
oidc = buildProvider(port);
main.on('request', mountedCallback());
const adminServer = http.createServer((req, res) => { admin(req, res); });
const adminPort = await listen(adminServer, config.adminPort ?? 0);

process.stdout.write(`OIDC-PROVIDER-READY ${JSON.stringify({ issuer: oidc.issuer, port, adminPort })}\n`);

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    main.close();
    adminServer.close();
    process.exit(0);
  });
}
