// A real OpenID Connect provider for the portal's SSO browser tests (oidc-provider, pinned).
//
// It serves on 127.0.0.1 only, with one confidential client (the portal) and made-up accounts
// whose claims follow from the login name: "verified-alice" is alice@example.org with
// email_verified true, "unverified-bob" is bob@example.org with email_verified false. Any
// password is accepted (oidc-provider's development login form); consent is implied.
//
// Environment: SSO_REDIRECT_URIS (comma separated, required), SSO_PORT (default 0: any free
// port), SSO_CLIENT_ID / SSO_CLIENT_SECRET (defaults below). Once serving it prints
// "oidc-provider listening on <issuer>".
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const redirectUris = (process.env.SSO_REDIRECT_URIS || '').split(',').filter(Boolean);
if (redirectUris.length === 0) {
  console.error('SSO_REDIRECT_URIS is required');
  process.exit(2);
}
// Bind first, then name the issuer after the port we got: no window for another process to
// take a port chosen in advance.
const server = createServer();
server.listen(Number(process.env.SSO_PORT || 0), '127.0.0.1');
await once(server, 'listening');
const issuer = `http://127.0.0.1:${server.address().port}`;
const LOGIN = /^(verified|unverified)-([a-z][a-z0-9]*)$/;

function accountFor(login) {
  const match = LOGIN.exec(login);
  if (!match) return undefined;
  const [, kind, name] = match;
  const givenName = name[0].toUpperCase() + name.slice(1);
  const claims = {
    sub: login,
    email: `${name}@example.org`,
    email_verified: kind === 'verified',
    name: `${givenName} Example`,
    given_name: givenName,
    family_name: 'Example',
    preferred_username: login,
  };
  return { accountId: login, claims: async () => claims };
}

// A fresh signing key per run: nothing secret is kept in the repository.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-sso', use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.SSO_CLIENT_ID || 'portal',
    client_secret: process.env.SSO_CLIENT_SECRET || 'portal-test-secret',
    redirect_uris: redirectUris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
  },
  features: { devInteractions: { enabled: true } },
  findAccount: async (ctx, id) => accountFor(id),
  // The portal is a first-party client: grant what it asks for instead of showing a consent page.
  loadExistingGrant: async (ctx) => {
    const { client, session, provider: op } = ctx.oidc;
    const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
    if (grantId) return op.Grant.find(grantId);
    const grant = new op.Grant({ clientId: client.clientId, accountId: session.accountId });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
});

server.on('request', provider.callback());
console.log(`oidc-provider listening on ${issuer}`);
