// openwrt/build-apk.sh end to end: every APK v3 package it writes passes the
// strict reader (test/lib/apk-reader.ts), carries OpenWrt's fields and
// scripts, installs the same files with the same modes and contents as the
// .ipk (when build/ipk holds them), a second build gives the same bytes, and a
// build signed with a test key verifies with its public key.

import { spawnSync } from 'node:child_process'
import { createHash, generateKeyPairSync } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { readApk } from '../lib/apk-reader.js'
import type { Apk } from '../lib/apk-reader.js'
import { readIpk } from '../lib/ipk-reader.js'
import { runBuild, sourceDateEpoch } from '../lib/packages.js'
import { repoRoot } from '../lib/ugate.js'
import { tempDir } from '../lib/temp.js'

t.setTimeout(60 * 60_000)

// All five (UGATE_ARCHS, which build-apk.sh reads too, narrows it for a quick run).
const ARCHS = process.env.UGATE_ARCHS?.split(/\s+/).filter(Boolean) ?? [
  'x86_64',
  'aarch64_generic',
  'arm_cortex-a7_neon-vfpv4',
  'mipsel_24kc',
  'mips_24kc',
]
const VERSION = (JSON.parse(readFileSync(resolve(repoRoot, 'package.json'), 'utf8')) as { version: string }).version
const PKGVER = `${VERSION}-r1`

/** package-pack.mk's apk scripts, for package NAME (EXTRA: its postinst-pkg without the shebang). */
function scripts(name: string, extra = ''): Record<string, string> {
  const postinst = `#!/bin/sh
[ "\${IPKG_NO_SCRIPT}" = "1" ] && exit 0
[ -s \${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. \${IPKG_INSTROOT}/lib/functions.sh
export root="\${IPKG_INSTROOT}"
export pkgname="${name}"
add_group_and_user
default_postinst
${extra}`
  return {
    'post-install': postinst,
    'post-upgrade': `#!/bin/sh\nexport PKG_UPGRADE=1\n${postinst.slice('#!/bin/sh\n'.length)}`,
    'pre-deinstall': `#!/bin/sh
[ -s \${IPKG_INSTROOT}/lib/functions.sh ] || exit 0
. \${IPKG_INSTROOT}/lib/functions.sh
export root="\${IPKG_INSTROOT}"
export pkgname="${name}"
default_prerm
`,
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

const buildApk = (env: NodeJS.ProcessEnv) => runBuild('openwrt/build-apk.sh', env)

/** The same files, modes and contents as the .ipk's data.tar (apk's own db files aside). */
function sameAsIpk(t: Test, apk: Apk, ipkFile: string) {
  if (!existsSync(ipkFile)) {
    t.fail(`${ipkFile} is missing: build both formats (./build.sh packages) before this test`)
    return
  }
  const ipk = readIpk(readFileSync(ipkFile))
  const fromIpk = ipk.data
    .filter((e) => e.type === 'file')
    .map((e) => `${e.name.slice(1)} ${e.mode.toString(8)} ${sha(e.data)}`)
    .sort()
  const fromApk = apk.files
    .filter((f) => !f.path.startsWith('/lib/apk/packages/'))
    .map((f) => `${f.path} ${f.mode.toString(8)} ${sha(f.data)}`)
    .sort()
  t.same(fromApk, fromIpk, `same files, modes and contents as ${ipkFile.slice(repoRoot.length + 1)}`)
  const dirsIpk = ipk.data
    .filter((e) => e.type === 'dir')
    .map((e) => e.name.slice(2).replace(/\/$/, ''))
    .sort()
  const dirsApk = apk.dirs
    .map((d) => d.name)
    .filter((d) => !/^lib(\/apk(\/packages)?)?$/.test(d) || dirsIpk.includes(d))
    .sort()
  t.same(dirsApk, dirsIpk, 'same directories (apk adds /lib/apk/packages)')
}

if (process.env.UGATE_BIN && resolve(repoRoot, process.env.UGATE_BIN) !== resolve(repoRoot, 'build/ugate')) {
  t.fail(`test/package/ tests the packaged binaries, not UGATE_BIN=${process.env.UGATE_BIN}: run it without UGATE_BIN`)
} else {
  const work = tempDir(t, 'apk-packages-')
  const out = resolve(repoRoot, 'build/apk')
  const epoch = sourceDateEpoch()
  // luci/ as it is (ipk-packages.ts substitutes a placeholder only for an empty luci/).
  const env = { UGATE_BUNDLE_FRESH: '1' }

  t.test('openwrt/build-apk.sh builds every package', async (t) => {
    const r = await buildApk(env)
    t.equal(r.status, 0, 'build-apk.sh exits 0', { stderr: r.stderr.split('\n').slice(-40) })
    for (const l of r.stderr.split('\n').filter((x) => /\.apk: \d+ bytes/.test(x))) t.comment(l)
  })

  t.test('build/apk/<arch>/ holds exactly ugate and luci-app-ugate', async (t) => {
    t.same(readdirSync(out).sort(), [...ARCHS].sort(), 'one directory per arch')
    for (const a of ARCHS) {
      t.same(readdirSync(join(out, a)).sort(), [`luci-app-ugate-${PKGVER}.apk`, `ugate-${PKGVER}.apk`], a)
    }
  })

  for (const arch of ARCHS) {
    t.test(`${arch}/ugate-${PKGVER}.apk`, async (t) => {
      const file = join(out, arch, `ugate-${PKGVER}.apk`)
      const apk = readApk(readFileSync(file), { epoch })
      t.comment(`${arch}: ${statSync(file).size} bytes (.apk), ${apk.info.installedSize} bytes installed`)
      t.equal(apk.info.name, 'ugate')
      t.equal(apk.info.version, PKGVER)
      t.equal(apk.info.arch, arch)
      t.equal(apk.info.license, 'Apache-2.0')
      t.equal(apk.info.origin, 'package/ugate')
      t.match(apk.info.description, /^Tiny TCP gateway: .*no shared libraries\.$/, 'description on one line')
      t.same(apk.info.depends, [], 'no dependencies (static binary)')
      t.same(apk.scripts, scripts('ugate'), "OpenWrt's post-install, post-upgrade, pre-deinstall")
      t.same(apk.conffiles, ['/etc/config/ugate'], 'conffiles')
      t.same(
        apk.files.map((f) => `${f.path} ${f.mode.toString(8)}`),
        [
          '/etc/config/ugate 600',
          '/etc/init.d/ugate 755',
          '/etc/uci-defaults/99-ugate 755',
          '/lib/apk/packages/ugate.conffiles 644',
          '/lib/apk/packages/ugate.conffiles_static 644',
          '/lib/apk/packages/ugate.list 644',
          '/usr/bin/ugate 755',
        ],
        'files and modes',
      )
      t.ok(
        apk.dirs.every((d) => d.mode === 0o755),
        'directories 0755',
      )
      const content = (p: string) => apk.files.find((f) => f.path === p)!.data
      t.ok(
        content('/usr/bin/ugate').equals(readFileSync(resolve(repoRoot, `build/cross/${arch}/ugate`))),
        'the cross-built binary',
      )
      for (const f of ['etc/init.d/ugate', 'etc/config/ugate', 'etc/uci-defaults/99-ugate']) {
        t.ok(content(`/${f}`).equals(readFileSync(resolve(repoRoot, 'files', f))), `/${f} is files/${f}`)
      }
      t.equal(apk.signatures.length, 0, 'unsigned')
      sameAsIpk(t, apk, resolve(repoRoot, `build/ipk/ugate_${PKGVER}_${arch}.ipk`))
    })
  }

  t.test(`luci-app-ugate-${PKGVER}.apk`, async (t) => {
    const first = readFileSync(join(out, ARCHS[0]!, `luci-app-ugate-${PKGVER}.apk`))
    for (const a of ARCHS.slice(1)) {
      t.ok(readFileSync(join(out, a, `luci-app-ugate-${PKGVER}.apk`)).equals(first), `${a}: the same noarch file`)
    }
    const apk = readApk(first, { epoch })
    t.equal(apk.info.name, 'luci-app-ugate')
    t.equal(apk.info.version, PKGVER)
    t.equal(apk.info.arch, 'noarch')
    t.same(apk.info.depends, ['luci-base', 'ugate'])
    t.same(apk.conffiles, [], 'no conffiles')
    const extra = `[ -n "\${IPKG_INSTROOT}" ] || {
\trm -f /tmp/luci-indexcache*
\trm -rf /tmp/luci-modulecache/
\tkillall -HUP rpcd 2>/dev/null
\texit 0
}
`
    t.same(apk.scripts, scripts('luci-app-ugate', extra), "OpenWrt's scripts with the postinst-pkg appended")
    for (const [k, v] of Object.entries(apk.scripts))
      t.equal(spawnSync('sh', ['-n', '-c', v]).status, 0, `${k} parses (sh -n)`)
    sameAsIpk(t, apk, resolve(repoRoot, `build/ipk/luci-app-ugate_${VERSION}_all.ipk`))
  })

  t.test('a second build gives the same bytes; a signed one verifies', async (t) => {
    const again = join(work, 'again')
    const r = await buildApk({ ...env, UGATE_APK_OUT: again })
    t.equal(r.status, 0, 'second build-apk.sh exits 0', { stderr: r.stderr.split('\n').slice(-40) })
    for (const a of ARCHS) {
      for (const name of [`ugate-${PKGVER}.apk`, `luci-app-ugate-${PKGVER}.apk`]) {
        const x = sha(readFileSync(join(out, a, name)))
        t.equal(sha(readFileSync(join(again, a, name))), x, `${a}/${name}: sha256 ${x.slice(0, 16)}… both times`)
      }
    }
    const keys = join(work, 'keys')
    mkdirSync(keys)
    const kp = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    writeFileSync(join(keys, 'test.pem'), kp.privateKey.export({ type: 'pkcs8', format: 'pem' }))
    const signedOut = join(work, 'signed')
    const s = await buildApk({
      ...env,
      UGATE_APK_OUT: signedOut,
      UGATE_APK_KEY: join(keys, 'test.pem'),
      UGATE_ARCHS: 'x86_64',
    })
    t.equal(s.status, 0, 'signed build exits 0', { stderr: s.stderr.split('\n').slice(-20) })
    for (const name of [`ugate-${PKGVER}.apk`, `luci-app-ugate-${PKGVER}.apk`]) {
      const apk = readApk(readFileSync(join(signedOut, 'x86_64', name)), { epoch, publicKey: kp.publicKey })
      t.equal(apk.signatures.length, 1, `${name}: signed, and the signature verifies`)
      const unsigned = readApk(readFileSync(join(out, 'x86_64', name)))
      t.ok(apk.adb.equals(unsigned.adb), `${name}: the same metadata as the unsigned one`)
    }
  })
}
