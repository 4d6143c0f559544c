// The `mesh` section (JSON and uci "config mesh"): defaults from the identity
// directory with Istio's file names, explicit paths, the trust domain, and
// every bad value named in the error.

import t from 'tap'
import { validateConfig } from '../../src/core/config.js'
import { configFromUci } from '../../src/core/uci-config.js'

const fwd = { name: 'f', type: 'forward', listen: '127.0.0.1:6000', target: '127.0.0.1:5201' }
const mesh = (m: unknown) => validateConfig({ listeners: [fwd], mesh: m }).mesh

t.test('no mesh section: null', async (t) => {
  t.equal(validateConfig({ listeners: [fwd] }).mesh, null)
  t.equal(mesh(null), null)
})

t.test('defaults: /etc/ugate/identity (what `ugate identity init` writes), any trust domain', async (t) => {
  t.same(mesh({}), {
    identityDir: '/etc/ugate/identity',
    certChain: '/etc/ugate/identity/cert-chain.pem',
    key: '/etc/ugate/identity/key.pem',
    rootCert: '/etc/ugate/identity/root-cert.pem',
    trustDomain: '',
    nodeSuffix: '',
  })
})

t.test('nodeSuffix: the short form of node names, lower case', async (t) => {
  t.equal(mesh({ nodeSuffix: 'Mesh.Home' })!.nodeSuffix, 'mesh.home')
})

t.test('identityDir moves every file; explicit files win; trailing slashes go', async (t) => {
  t.same(mesh({ identityDir: '/data/id/', rootCert: '/etc/mesh/ca.pem', trustDomain: 'cluster.local' }), {
    identityDir: '/data/id',
    certChain: '/data/id/cert-chain.pem',
    key: '/data/id/key.pem',
    rootCert: '/etc/mesh/ca.pem',
    trustDomain: 'cluster.local',
    nodeSuffix: '',
  })
  t.equal(mesh({ identityDir: '/' })!.key, '/key.pem')
})

t.test('bad values are named', async (t) => {
  const cases: [unknown, string][] = [
    ['yes', 'mesh: expected an object, got "yes"'],
    [{ identityDir: 'etc/id' }, 'mesh.identityDir: "etc/id" is not an absolute file path'],
    [{ certChain: 5 }, 'mesh.certChain: 5 is not an absolute file path'],
    [{ key: '/a\nb' }, 'mesh.key: "/a\\nb" is not an absolute file path'],
    [{ rootCert: '' }, 'mesh.rootCert: "" is not an absolute file path'],
    [{ trustDomain: 'Cluster.Local' }, 'mesh.trustDomain: "Cluster.Local" may only hold a-z, 0-9, ".", "-" and "_"'],
    [{ trustDomain: 7 }, 'mesh.trustDomain: 7 is not a string'],
    [
      { cert: '/x' },
      'mesh.cert: unknown key (expected one of: identityDir, certChain, key, rootCert, trustDomain, nodeSuffix)',
    ],
    [{ nodeSuffix: 'a..b' }, 'mesh.nodeSuffix: "a..b" is not a host name suffix: empty label at 2'],
    [{ nodeSuffix: 3 }, 'mesh.nodeSuffix: 3 is not a host name suffix: is not a string'],
  ]
  for (const [m, message] of cases) t.throws(() => mesh(m), { message }, message)
})

t.test('uci: config mesh', async (t) => {
  const text = `config listener 'f'
	option type 'forward'
	option address '127.0.0.1'
	option port '6000'
	option target '127.0.0.1:5201'

config mesh 'mesh'
	option identity_dir '/etc/ugate/id'
	option root_cert '/etc/ugate/ca.pem'
	option trust_domain 'home.arpa'
	option node_suffix 'Nodes.Home'
`
  t.same(configFromUci(text, '/etc/config/ugate').mesh, {
    identityDir: '/etc/ugate/id',
    certChain: '/etc/ugate/id/cert-chain.pem',
    key: '/etc/ugate/id/key.pem',
    rootCert: '/etc/ugate/ca.pem',
    trustDomain: 'home.arpa',
    nodeSuffix: 'nodes.home',
  })
  t.throws(() => configFromUci(text.replace("'Nodes.Home'", "'-x'"), '/etc/config/ugate'), {
    message: /^\/etc\/config\/ugate:7: mesh\.node_suffix: "-x" is not a host name suffix/,
  })
  t.throws(() => configFromUci(text.replace("'home.arpa'", "'Home'"), '/etc/config/ugate'), {
    message: '/etc/config/ugate:7: mesh.trust_domain: "Home" may only hold a-z, 0-9, ".", "-" and "_"',
  })
  t.throws(() => configFromUci(`${text}\toption cert '/x'\n`, '/etc/config/ugate'), { message: /mesh.*cert/ })
  t.throws(() => configFromUci(`${text}\nconfig mesh\n`, '/etc/config/ugate'), {
    message: /only one "config mesh" section is allowed/,
  })
})
