// luci-app-ugate's menu (menu.d) and ACL (acl.d) files, checked against the
// shapes LuCI's dispatcher and rpcd read them with (openwrt/luci
// modules/luci-base/ucode/dispatcher.uc build_pagetree, check_depends,
// run_action; openwrt/rpcd session.c rpc_login_setup_acl_file/_scope), and
// cross-checked with what the views use: every rpc.declare() of the views is
// granted and nothing else is; uci access is exactly the packages they load
// and save. Also the package layout (Makefile, executable plugin).

import { spawnSync } from 'node:child_process'
import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { loadView, luciDir, resourcesDir, scanRequires } from '../lib/luci-standin.js'

const MENU_FILE = join(luciDir, 'root/usr/share/luci/menu.d/luci-app-ugate.json')
const ACL_FILE = join(luciDir, 'root/usr/share/rpcd/acl.d/luci-app-ugate.json')
const PLUGIN = join(luciDir, 'root/usr/libexec/rpcd/luci.ugate')

type Obj = Record<string, unknown>
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v)
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string')

// ---- menu.d ------------------------------------------------------------------------

/** dispatcher.uc build_pagetree: the node fields it copies, with the ucode type each must have. */
const MENU_FIELDS: Record<string, 'object' | 'bool' | 'int' | 'string'> = {
  action: 'object',
  auth: 'object',
  cors: 'bool',
  depends: 'object',
  order: 'int',
  setgroup: 'string',
  setuser: 'string',
  title: 'string',
  wildcard: 'bool',
  firstchild_ineligible: 'bool',
}

/** Nodes luci-base defines (menu.d/luci-base.json) that apps hang under. */
const CORE_NODES = ['admin', 'admin/status', 'admin/system', 'admin/services', 'admin/network', 'admin/vpn']

/** Problems with one menu file; [] when LuCI reads every node as meant. */
function menuProblems(menu: unknown, aclGroups: string[]): string[] {
  const out: string[] = []
  if (!isObj(menu)) return ['the menu file is not a JSON object']
  const paths = Object.keys(menu)
  if (paths.length === 0) out.push('no menu nodes')
  const typeOk = (v: unknown, t: string) =>
    t === 'object'
      ? isObj(v)
      : t === 'bool'
        ? typeof v === 'boolean'
        : t === 'int'
          ? Number.isInteger(v)
          : typeof v === 'string'
  for (const path of paths) {
    const spec = menu[path]
    const at = `${JSON.stringify(path)}`
    if (!/^[A-Za-z0-9_.%,;-]+(?:\/[A-Za-z0-9_.%,;-]+)*$/.test(path))
      out.push(`${at}: not a path of "/"-separated words`)
    if (!isObj(spec)) {
      out.push(`${at}: not an object (LuCI skips it)`)
      continue
    }
    for (const [k, v] of Object.entries(spec)) {
      const want = MENU_FIELDS[k]
      if (want === undefined) out.push(`${at}: unknown field ${JSON.stringify(k)} (LuCI ignores it)`)
      else if (!typeOk(v, want))
        out.push(`${at}.${k}: must be ${want === 'int' ? 'an integer' : `a ${want}`} (LuCI ignores it otherwise)`)
    }
    const parent = path.split('/').slice(0, -1).join('/')
    if (parent !== '' && !paths.includes(parent) && !CORE_NODES.includes(parent))
      out.push(`${at}: parent ${JSON.stringify(parent)} is not a menu node`)

    const action = spec.action
    if (isObj(action)) {
      const type = action.type
      switch (type) {
        case 'view':
          if (typeof action.path !== 'string') out.push(`${at}.action: a view needs "path"`)
          else if (!existsSync(join(resourcesDir, 'view', `${action.path}.js`)))
            out.push(`${at}.action: no file view/${action.path}.js`)
          break
        case 'alias':
        case 'rewrite':
          if (typeof action.path !== 'string') out.push(`${at}.action: ${type} needs "path"`)
          else if (type === 'alias' && !paths.includes(action.path) && !CORE_NODES.includes(action.path)) {
            out.push(`${at}.action: alias to ${JSON.stringify(action.path)}, which is not a menu node`)
          }
          break
        case 'firstchild':
          break
        case 'template':
        case 'cbi':
        case 'form':
          if (typeof action.path !== 'string') out.push(`${at}.action: ${type} needs "path"`)
          break
        case 'call':
        case 'function':
          if (typeof action.module !== 'string' || typeof action.function !== 'string')
            out.push(`${at}.action: ${type} needs "module" and "function"`)
          break
        case 'arcombine':
          if (!Array.isArray(action.targets)) out.push(`${at}.action: arcombine needs "targets"`)
          break
        default:
          out.push(`${at}.action: unknown type ${JSON.stringify(type)}`)
      }
    } else if (!path.includes('*')) {
      out.push(`${at}: no action`)
    }

    const depends = spec.depends
    if (isObj(depends)) {
      for (const [k, v] of Object.entries(depends)) {
        if (k === 'acl') {
          if (!isStringArray(v)) out.push(`${at}.depends.acl: must be a list of ACL group names`)
          else
            for (const g of v)
              if (!aclGroups.includes(g))
                out.push(`${at}.depends.acl: group ${JSON.stringify(g)} is not defined in acl.d`)
        } else if (k === 'uci') {
          const alternatives = Array.isArray(v) ? v : [v]
          for (const alt of alternatives) {
            if (!isObj(alt)) out.push(`${at}.depends.uci: must be an object { config: true | { section: ... } }`)
            else {
              for (const [config, want] of Object.entries(alt)) {
                if (!/^[A-Za-z0-9_-]+$/.test(config))
                  out.push(`${at}.depends.uci: ${JSON.stringify(config)} is not a uci package name`)
                if (want !== true && !isObj(want)) out.push(`${at}.depends.uci.${config}: must be true or an object`)
              }
            }
          }
        } else if (k === 'fs') {
          const alternatives = Array.isArray(v) ? v : [v]
          for (const alt of alternatives) {
            if (
              !isObj(alt) ||
              !Object.values(alt).every((kind) => ['file', 'directory', 'executable', 'absent'].includes(String(kind)))
            ) {
              out.push(`${at}.depends.fs: must map paths to file, directory, executable or absent`)
            }
          }
        } else {
          out.push(`${at}.depends: unknown key ${JSON.stringify(k)}`)
        }
      }
    }
  }
  return out
}

// ---- acl.d -----------------------------------------------------------------------------

/** Problems with one ACL file as rpcd reads it; [] when every grant takes effect. */
function aclProblems(acl: unknown): string[] {
  const out: string[] = []
  if (!isObj(acl)) return ['the ACL file is not a JSON object']
  for (const [group, spec] of Object.entries(acl)) {
    const at = JSON.stringify(group)
    if (!/^[A-Za-z0-9_.-]+$/.test(group)) out.push(`${at}: not a group name`)
    if (!isObj(spec)) {
      out.push(`${at}: not an object`)
      continue
    }
    for (const [perm, scopes] of Object.entries(spec)) {
      if (perm === 'description') {
        if (typeof scopes !== 'string') out.push(`${at}.description: must be a string`)
        continue
      }
      if (perm !== 'read' && perm !== 'write') {
        out.push(`${at}: unknown key ${JSON.stringify(perm)} (rpcd knows read and write)`)
        continue
      }
      if (!isObj(scopes)) {
        out.push(`${at}.${perm}: must be an object of scopes (rpcd skips it)`)
        continue
      }
      for (const [scope, objects] of Object.entries(scopes)) {
        const where = `${at}.${perm}.${scope}`
        if (scope === 'ubus' || scope === 'file') {
          // table notation: object → [functions]; rpcd skips non-arrays and non-strings
          if (!isObj(objects) || !Object.values(objects).every(isStringArray))
            out.push(`${where}: must map each object to a list of names`)
          if (scope === 'file' && isObj(objects)) {
            for (const perms of Object.values(objects)) {
              if (isStringArray(perms) && !perms.every((p) => ['read', 'write', 'exec', 'list'].includes(p)))
                out.push(`${where}: file permissions are read, write, exec, list`)
            }
          }
        } else if (scope === 'uci' || scope === 'cgi-io') {
          // array notation: the permission itself is the function
          if (!isStringArray(objects)) out.push(`${where}: must be a list of names`)
          else if (scope === 'uci')
            for (const c of objects)
              if (!/^[A-Za-z0-9_-]+$/.test(c) && c !== '*')
                out.push(`${where}: ${JSON.stringify(c)} is not a uci package`)
        } else {
          out.push(`${where}: unknown scope`)
        }
      }
    }
  }
  return out
}

// ---- the tests -------------------------------------------------------------------------

const menu = JSON.parse(readFileSync(MENU_FILE, 'utf8')) as Obj
const acl = JSON.parse(readFileSync(ACL_FILE, 'utf8')) as Obj

t.test("menu.d: the shape LuCI's dispatcher reads", async (t) => {
  t.same(menuProblems(menu, Object.keys(acl)), [])
  t.same(Object.keys(menu), ['admin/services/ugate', 'admin/services/ugate/settings', 'admin/services/ugate/status'])
  t.same(menu['admin/services/ugate'], {
    title: 'ugate',
    order: 60,
    action: { type: 'alias', path: 'admin/services/ugate/settings' },
    depends: { acl: ['luci-app-ugate'], uci: { ugate: true } },
  })
  t.same((menu['admin/services/ugate/settings'] as Obj).action, { type: 'view', path: 'ugate/settings' })
  t.same((menu['admin/services/ugate/status'] as Obj).action, { type: 'view', path: 'ugate/status' })
  for (const p of Object.keys(menu))
    t.type((menu[p] as Obj).title, 'string', `${p} has a title (untitled nodes are not shown)`)
})

t.test('menu.d: the checks catch what LuCI would silently ignore', async (t) => {
  const bad = {
    'admin/services/x': {
      title: 'x',
      order: '10',
      action: { type: 'view', path: 'x/missing' },
      depends: { acl: ['nope'], uci: { 'b a d': true } },
    },
    'admin/nowhere/y': { title: 'y', action: { type: 'alias', path: 'admin/services/z' }, dependz: {} },
    'admin/services/w': { title: 'w', action: { type: 'viewz' } },
  }
  const problems = menuProblems(bad, ['luci-app-ugate'])
  for (const re of [
    /order: must be an integer/,
    /no file view\/x\/missing\.js/,
    /group "nope"/,
    /"b a d" is not a uci package/,
    /parent "admin\/nowhere"/,
    /alias to "admin\/services\/z"/,
    /unknown field "dependz"/,
    /unknown type "viewz"/,
  ]) {
    t.ok(
      problems.some((p) => re.test(p)),
      String(re),
    )
  }
})

t.test('acl.d: the shape rpcd reads', async (t) => {
  t.same(aclProblems(acl), [])
  t.same(Object.keys(acl), ['luci-app-ugate'])
  t.same(
    aclProblems({ g: { read: { ubus: { o: 'm' }, uci: 'ugate', files: [] }, writ: {} } }).length,
    4,
    'the checks catch misshapen grants',
  )
})

/** Every (scope, object, function) the ACL grants, as rpcd would (read and write alike). */
function grants(a: Obj): Array<[string, string, string, string]> {
  const out: Array<[string, string, string, string]> = []
  for (const spec of Object.values(a) as Obj[]) {
    for (const perm of ['read', 'write']) {
      const scopes = spec[perm]
      if (!isObj(scopes)) continue
      for (const [scope, objects] of Object.entries(scopes)) {
        if (Array.isArray(objects)) for (const o of objects) out.push([perm, scope, String(o), perm])
        else if (isObj(objects))
          for (const [o, fns] of Object.entries(objects)) for (const f of fns as string[]) out.push([perm, scope, o, f])
      }
    }
  }
  return out
}

t.test('acl.d grants exactly what the views use', async (t) => {
  const settings = await loadView('ugate/settings', { uci: { ugate: "config ugate 'main'\n" } })
  const status = await loadView('ugate/status')
  const used = new Set([...settings.declared, ...status.declared].map((d) => `${d.object}.${d.method}`))
  const g = grants(acl)

  const ubus = new Set(g.filter(([, scope]) => scope === 'ubus').map(([, , o, f]) => `${o}.${f}`))
  t.same([...ubus].sort(), [...used].sort(), 'ubus: every rpc.declare is granted, and nothing else')
  t.ok(
    g.filter(([, scope]) => scope === 'ubus').every(([perm]) => perm === 'read'),
    'ubus grants are read grants',
  )
  t.same([...used].sort(), ['service.list', 'ugate.connections', 'ugate.status'])

  const uciRead = g.filter(([perm, scope]) => perm === 'read' && scope === 'uci').map(([, , c]) => c)
  const uciWrite = g.filter(([perm, scope]) => perm === 'write' && scope === 'uci').map(([, , c]) => c)
  const loaded = [...new Set([...settings.uciPackages, ...status.uciPackages])].sort()
  const saved = [...new Set(settings.maps.map((m: { config: string }) => m.config))].sort()
  t.same(uciRead.sort(), loaded, 'uci read: the packages the views load')
  t.same(uciWrite.sort(), saved, 'uci write: the packages the forms save')
  t.same(
    g.filter(([, scope]) => scope !== 'ubus' && scope !== 'uci'),
    [],
    'no file or cgi-io access',
  )
})

t.test('the fallback plugin, the ACL and the status view name the same methods', async (t) => {
  const r = spawnSync('sh', [PLUGIN, 'list'], { encoding: 'utf8' })
  t.equal(r.status, 0)
  const methods = Object.keys(JSON.parse(r.stdout) as Obj).sort()
  const granted = ((acl['luci-app-ugate'] as Obj).read as { ubus: Record<string, string[]> }).ubus['ugate']!
  t.same([...granted].sort(), methods)
  const status = await loadView('ugate/status')
  t.same(
    status.declared
      .filter((d) => d.object === 'ugate')
      .map((d) => d.method)
      .sort(),
    methods,
  )
})

t.test('package layout', async (t) => {
  const makefile = readFileSync(join(luciDir, 'Makefile'), 'utf8')
  t.match(makefile, /^LUCI_TITLE:=\S/m)
  t.match(makefile, /^LUCI_DEPENDS:=.*\+ugate\b/m)
  t.match(makefile, /^PKG_LICENSE:=Apache-2\.0$/m)
  t.match(makefile, /^LUCI_NAME:=luci-app-ugate$/m, 'named explicitly (luci.mk would use the directory name)')
  t.match(makefile, /^LUCI_PKGARCH:=all$/m)
  t.match(makefile, /^include \S*luci\.mk$/m)
  t.match(makefile, /^# call BuildPackage - OpenWrt buildroot signature$/m)

  const views = readdirSync(join(resourcesDir, 'view/ugate')).sort()
  t.same(views, ['settings.js', 'status.js'])
  const menuViews = Object.values(menu)
    .map((n) => (n as { action?: { type?: string; path?: string } }).action)
    .filter((a) => a?.type === 'view')
    .map((a) => `${a!.path!.replace(/^ugate\//, '')}.js`)
    .sort()
  t.same(menuViews, views, 'every view has a menu entry')
  t.same(readdirSync(resourcesDir).sort(), ['ugate.js', 'view'], "the views' shared module, resources/ugate.js")
  t.same(
    scanRequires(readFileSync(join(resourcesDir, 'ugate.js'), 'utf8')),
    [{ name: 'baseclass', as: 'baseclass' }],
    'ugate.js only checks values: it needs no uci or rpc access of its own',
  )

  t.doesNotThrow(() => accessSync(PLUGIN, constants.X_OK), 'the plugin is executable')
  t.ok(statSync(PLUGIN).mode & 0o001, 'executable by everyone (rpcd runs it as root, opkg keeps the mode)')
  t.match(readFileSync(PLUGIN, 'utf8'), /^#!\/bin\/sh\n/, 'a POSIX sh script')
})
