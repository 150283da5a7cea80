// The upstream identity provider for the end-to-end tests: the certified
// `oidc-provider`, with one confidential client (Portcullis) and a login
// that signs in the account named on the command line without a form, as
// if the person had typed their password.
//
// usage: node upstream-idp.mjs PORT CLIENT_ID CLIENT_SECRET REDIRECT_URI ACCOUNT_JSON
//   ACCOUNT_JSON: {"sub": "...", "preferred_username": "...", "groups": [...], ...}
import http from 'node:http';
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, redirectUri, accountJson] = process.argv.slice(2);
const account = JSON.parse(accountJson);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username', 'groups'],
    email: ['email', 'email_verified'],
  },
  // Put the scopes' claims in the ID token, where Portcullis reads them.
  conformIdTokenClaims: false,
  cookies: { keys: ['portcullis-e2e-only'] },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, id) => (id === account.sub
    ? { accountId: id, claims: async () => account }
    : undefined),
});

async function interact(req, res) {
  const details = await provider.interactionDetails(req, res);
  let result;
  if (details.prompt.name === 'login') {
    result = { login: { accountId: account.sub } };
  } else {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    result = { consent: { grantId: await grant.save() } };
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
}

const callback = provider.callback();
http.createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interact(req, res).catch((err) => {
      console.error(err);
      res.statusCode = 500;
      res.end(String(err));
    });
  } else {
    callback(req, res);
  }
}).listen(Number(port), '127.0.0.1', () => console.log(`upstream provider at ${issuer}`));
