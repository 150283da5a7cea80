// A certified relying party (`openid-client`) against Portcullis's OpenID
// Connect provider: discovery, authorization with PKCE S256, nonce and
// state, the browser's visit (with its session cookie), the code
// exchange with ID-token validation against the JWKS, and userinfo.
// Prints what it got as JSON; any failed check throws and exits non-zero.
//
// usage: node relying-party.mjs ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI SESSION_COOKIE
import * as client from 'openid-client';

const [issuer, clientId, clientSecret, redirectUri, cookie] = process.argv.slice(2);

// Plain http: the test's companion listens on 127.0.0.1.
const config = await client.discovery(
  new URL(issuer), clientId, undefined, client.ClientSecretBasic(clientSecret),
  { execute: [client.allowInsecureRequests] },
);
const verifier = client.randomPKCECodeVerifier();
const nonce = client.randomNonce();
const state = client.randomState();
const authorize = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope: 'openid profile email',
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  nonce,
  state,
});

// The browser: it carries the session cookie and is sent back to the
// application with the code.
const visit = await fetch(authorize, { headers: { cookie }, redirect: 'manual' });
const location = visit.headers.get('location');
if (visit.status !== 302 || !location?.startsWith(redirectUri)) {
  throw new Error(`authorize answered ${visit.status} to ${location}: ${await visit.text()}`);
}

const tokens = await client.authorizationCodeGrant(config, new URL(location), {
  pkceCodeVerifier: verifier,
  expectedNonce: nonce,
  expectedState: state,
  idTokenExpected: true,
});
const claims = tokens.claims();
const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
console.log(JSON.stringify({
  claims,
  userinfo,
  access_token: tokens.access_token,
  token_type: tokens.token_type,
  scope: tokens.scope,
}));
