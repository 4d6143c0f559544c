// A recording stand-in of LuCI's client-side runtime, for testing the views
// of luci-app-ugate (luci/htdocs/luci-static/resources/view/ugate/*.js) and
// the module they share (resources/ugate.js, loadModule) on Node without a
// browser or a router.
//
// What it emulates (read from openwrt/luci modules/luci-base/htdocs/
// luci-static/resources/{luci,form,ui,uci,rpc,validation}.js):
//
// - The class loader, LuCI.require(): the view file is fetched by its dotted
//   name (view.ugate.settings → view/ugate/settings.js), its leading string
//   directives are scanned the way luci.js does ('use strict' is skipped,
//   'require NAME [as ALIAS]' loads NAME and adds a parameter ALIAS, or NAME
//   with non-identifier characters turned into "_"; the scan stops at the
//   first other string), the source is wrapped as
//   `(function(window, document, L, <aliases>) { <source> })` and evaluated
//   (here in a vm context whose globals are E, _ and N_, like a browser
//   window), the function is called with the loaded instances, its result
//   must be a subclass of baseclass ("factory yields invalid constructor"
//   otherwise), and the class is instantiated. For a view that runs
//   view.__init__: load(), then render() with load()'s result.
// - baseclass (extend, singleton, instantiate, isSubclass, super, varargs)
//   and the preloaded classes of luci.js: baseclass, dom, poll, request,
//   session, view. The modules that LuCI loads from files (form, uci, rpc,
//   ui) are stand-ins here; any other 'require' fails like a missing file.
// - form: Map, NamedSection, TypedSection, TableSection, GridSection and the
//   option classes (Value, DynamicList, ListValue, Flag, MultiValue, and
//   the display-only ones) with LuCI's load → cfgvalue, depends,
//   formvalue, isActive, parse → write/remove semantics. Widgets are not
//   drawn: each (section, option) pair that LuCI would render gets a widget
//   record holding its value as the browser widget would (Textfield: a
//   string, Select: the chosen key, DynamicList: the items, Checkbox:
//   checked). A GridSection row is handled as LuCI's modal does (all of its
//   options rendered and parsed), as if every row had been opened and saved.
//   A NamedSection with addremove adds and removes its one named section.
// - Validation as ui.js/validation.js run it: an empty value passes only
//   when the widget is optional (Value: optional or rmempty; ListValue:
//   optional), a non-empty value must pass the datatype expression
//   (validation.js's grammar and the datatypes a view may use, written here
//   from their documented behaviour), then the option's validate(section_id,
//   value) must return true. A DynamicList checks each item as it would be
//   typed into its input, and also calls validate(section_id, '') (the
//   empty input), which is where list-wide checks run. Values are checked
//   when asked for (LuCI re-validates every active field after each change,
//   so the result is the same).
// - uci (load, sections, get, get_first, set, unset, add, remove, move,
//   save), backed by uci text parsed with src/core/uci.ts and written back
//   with writeUci, so a saved form can be fed to the daemon's own reader.
// - rpc.declare (params, expect, filter, reject) answered by handlers the
//   test gives, the way uhttpd's /ubus answers: a missing object (-32000)
//   and, when an ACL file is given, a call the ACL does not grant (-32002)
//   reject the call's promise; a missing method answers ubus status 3; a
//   denied uci package loads empty, a denied uci write fails.
// - poll (add, remove, tick) and ui (notifications, modals), recording.
// - E() and dom.* on a small fake DOM, and String.prototype.format.

import { existsSync, readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import vm from 'node:vm'
import { type UciPackage, type UciSection, parseUci, uciAnonymousName, writeUci } from '../../src/core/uci.js'

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const luciDir = resolve(repoRoot, 'luci')
export const resourcesDir = resolve(luciDir, 'htdocs/luci-static/resources')

// ---- baseclass ---------------------------------------------------------------------

const toCamelCase = (s: string) => s.replace(/(?:^|[. -])(.)/g, (_m, c: string) => c.toUpperCase())

/** LuCI's class system: prototype chains with __init__, super() and varargs(). */
function makeBaseclass(): Any {
  const superStacks: Record<string, object[]> = {}
  let classIndex = 0
  const Class: Any = Object.assign(function () {}, {
    extend(this: Any, properties: Any) {
      const props: PropertyDescriptorMap = {
        __id__: { value: classIndex },
        __base__: { value: this.prototype },
        __name__: { value: properties.__name__ || `anonymous${classIndex++}` },
      }
      const ClassConstructor: Any = function (this: Any, ...args: unknown[]) {
        if (!(this instanceof ClassConstructor)) throw new TypeError('Constructor must not be called without "new"')
        if (Object.prototype.hasOwnProperty.call(Object.getPrototypeOf(this), '__init__')) {
          if (typeof this.__init__ !== 'function') throw new TypeError('Class __init__ member is not a function')
          this.__init__(...args)
        } else {
          this.super('__init__', args)
        }
      }
      for (const key of Object.keys(properties)) {
        if (!props[key]) props[key] = { value: properties[key], writable: true }
      }
      ClassConstructor.prototype = Object.create(this.prototype, props)
      ClassConstructor.prototype.constructor = ClassConstructor
      Object.assign(ClassConstructor, this)
      ClassConstructor.displayName = toCamelCase(`${props.__name__!.value}Class`)
      return ClassConstructor
    },
    singleton(this: Any, properties: Any, ...args: unknown[]) {
      return Class.extend(properties).instantiate(args)
    },
    instantiate(this: Any, args: ArrayLike<unknown>) {
      return new this(...Array.from(args))
    },
    isSubclass(this: Any, cls: Any) {
      return cls != null && typeof cls === 'function' && cls.prototype instanceof this
    },
    prototype: {
      varargs(args: ArrayLike<unknown>, offset: number, ...prepend: unknown[]) {
        return prepend.concat(Array.prototype.slice.call(args, offset))
      },
      // The prototype above the one whose method is running: a stack per
      // object class and key, as luci.js keeps it.
      super(this: Any, key: string, callArgs?: unknown) {
        if (key == null) return null
        const slot = `${this.__id__}.${key}`
        const stack = superStacks[slot]
        let proto = Object.getPrototypeOf(stack ? stack[0] : Object.getPrototypeOf(this))
        while (proto != null && !Object.prototype.hasOwnProperty.call(proto, key)) proto = Object.getPrototypeOf(proto)
        if (proto == null) return null
        let res = proto[key]
        if (arguments.length > 1) {
          if (typeof res !== 'function') throw new ReferenceError(`${key} is not a function in base class`)
          const args =
            typeof callArgs === 'object' && callArgs !== null
              ? Array.from(callArgs as ArrayLike<unknown>)
              : Array.prototype.slice.call(arguments, 1)
          if (stack) stack.unshift(proto)
          else superStacks[slot] = [proto]
          try {
            res = res.apply(this, args)
          } finally {
            const s = superStacks[slot]!
            if (s.length > 1) s.shift()
            else delete superStacks[slot]
          }
        }
        return res
      },
      toString(this: Any) {
        return `[${this.constructor.displayName}]`
      },
    },
  })
  return Class
}

// ---- a small DOM ---------------------------------------------------------------------

/** An element, text node (nodeType 3) or fragment (11) with what views and dom.* use. */
export class FakeNode {
  nodeType: number
  tagName: string
  data: string
  attributes: Record<string, string> = {}
  children: FakeNode[] = []
  parentNode: FakeNode | null = null
  listeners: Record<string, Array<(...a: unknown[]) => unknown>> = {}

  constructor(nodeType: number, tagName = '', data = '') {
    this.nodeType = nodeType
    this.tagName = tagName.toUpperCase()
    this.data = data
  }

  get childNodes(): FakeNode[] {
    return this.children
  }
  get firstChild(): FakeNode | null {
    return this.children[0] ?? null
  }
  get lastChild(): FakeNode | null {
    return this.children[this.children.length - 1] ?? null
  }
  get textContent(): string {
    return this.nodeType === 3 ? this.data : this.children.map((c) => c.textContent).join('')
  }
  set textContent(text: string) {
    this.children = []
    if (text !== '') this.appendChild(new FakeNode(3, '', text))
  }
  set innerHTML(text: string) {
    this.textContent = text
  }
  get id(): string {
    return this.attributes.id ?? ''
  }
  get classList() {
    const classes = () => (this.attributes.class ?? '').split(/\s+/).filter(Boolean)
    const set = (list: string[]) => {
      this.attributes.class = list.join(' ')
    }
    return {
      contains: (c: string) => classes().includes(c),
      add: (...cs: string[]) => set([...new Set([...classes(), ...cs])]),
      remove: (...cs: string[]) => set(classes().filter((x) => !cs.includes(x))),
    }
  }
  appendChild(child: FakeNode): FakeNode {
    if (child.nodeType === 11) {
      for (const c of [...child.children]) this.appendChild(c)
      child.children = []
      return child
    }
    if (child.parentNode) child.parentNode.removeChild(child)
    child.parentNode = this
    this.children.push(child)
    return child
  }
  removeChild(child: FakeNode): FakeNode {
    this.children = this.children.filter((c) => c !== child)
    child.parentNode = null
    return child
  }
  setAttribute(k: string, v: unknown): void {
    this.attributes[k] = String(v)
  }
  getAttribute(k: string): string | null {
    return Object.prototype.hasOwnProperty.call(this.attributes, k) ? this.attributes[k]! : null
  }
  removeAttribute(k: string): void {
    delete this.attributes[k]
  }
  addEventListener(ev: string, fn: (...a: unknown[]) => unknown): void {
    ;(this.listeners[ev] ??= []).push(fn)
  }
  dispatchEvent(): boolean {
    return true
  }
  /** Simple selectors only: tag, #id, .class, [attr] and [attr="value"], one compound. */
  querySelectorAll(selector: string): FakeNode[] {
    const out: FakeNode[] = []
    const test = (n: FakeNode) => matches(n, selector)
    const walk = (n: FakeNode) => {
      for (const c of n.children) {
        if (c.nodeType === 1 && test(c)) out.push(c)
        walk(c)
      }
    }
    walk(this)
    return out
  }
  querySelector(selector: string): FakeNode | null {
    return this.querySelectorAll(selector)[0] ?? null
  }
}

function matches(n: FakeNode, selector: string): boolean {
  const re = /([.#]?[A-Za-z0-9_-]+)|\[([A-Za-z0-9_-]+)(?:="([^"]*)")?\]/g
  let m: RegExpExecArray | null
  let any = false
  while ((m = re.exec(selector)) !== null) {
    any = true
    if (m[1] !== undefined) {
      const t = m[1]
      if (
        t.startsWith('#')
          ? n.id !== t.slice(1)
          : t.startsWith('.')
            ? !n.classList.contains(t.slice(1))
            : n.tagName !== t.toUpperCase()
      )
        return false
    } else if (m[3] === undefined ? n.getAttribute(m[2]!) === null : n.getAttribute(m[2]!) !== m[3]) {
      return false
    }
  }
  return any
}

/** The text nodes of a rendered node, each trimmed, joined by single spaces (for assertions). */
export function textOf(node: unknown): string {
  if (!(node instanceof FakeNode)) return String(node ?? '')
  const parts: string[] = []
  const walk = (n: FakeNode) => {
    if (n.nodeType === 3) {
      if (n.data.trim() !== '') parts.push(n.data.trim())
    } else n.children.forEach(walk)
  }
  walk(node)
  return parts.join(' ')
}

function makeDom(baseclass: Any): Any {
  const dom = baseclass.singleton({
    __name__: 'LuCI.dom',
    elem(e: unknown) {
      return e instanceof FakeNode
    },
    parse(s: string) {
      const n = new FakeNode(1, 'div')
      n.textContent = s
      return n
    },
    matches(node: unknown, selector: string) {
      return node instanceof FakeNode && matches(node, selector)
    },
    append(node: unknown, children: unknown): unknown {
      if (!(node instanceof FakeNode)) return null
      if (Array.isArray(children)) {
        for (const c of children) {
          if (c instanceof FakeNode) node.appendChild(c)
          else if (c !== null && c !== undefined) node.appendChild(new FakeNode(3, '', String(c)))
        }
        return node.lastChild
      }
      if (typeof children === 'function') return this.append(node, children(node))
      if (children instanceof FakeNode) return node.appendChild(children)
      if (children !== null && children !== undefined) {
        node.innerHTML = String(children)
        return node.lastChild
      }
      return null
    },
    content(node: unknown, children: unknown) {
      if (!(node instanceof FakeNode)) return null
      for (const c of [...node.children]) node.removeChild(c)
      return this.append(node, children)
    },
    attr(node: unknown, key: unknown, val?: unknown) {
      if (!(node instanceof FakeNode)) return null
      const attrs: Record<string, unknown> =
        typeof key === 'object' && key !== null ? (key as Record<string, unknown>) : { [String(key)]: val }
      for (const [k, v] of Object.entries(attrs)) {
        if (v == null) continue
        if (typeof v === 'function') node.addEventListener(k, v as (...a: unknown[]) => unknown)
        else if (typeof v === 'object') node.setAttribute(k, JSON.stringify(v))
        else node.setAttribute(k, v)
      }
      return null
    },
    create(html: unknown, attr?: unknown, data?: unknown): FakeNode | null {
      // LuCI tests `attr instanceof Object`; objects from the views' realm need typeof here
      if (attr === null || typeof attr !== 'object' || Array.isArray(attr) || attr instanceof FakeNode) {
        data = attr
        attr = null
      }
      let elem: FakeNode
      if (Array.isArray(html)) {
        elem = new FakeNode(11)
        for (const h of html) elem.appendChild(this.create(h)!)
      } else if (html instanceof FakeNode) {
        elem = html
      } else if (String(html).charCodeAt(0) === 60) {
        elem = this.parse(String(html))
      } else {
        elem = new FakeNode(1, String(html))
      }
      this.attr(elem, attr)
      this.append(elem, data)
      return elem
    },
    // bindClassInstance / findClassInstance: a registry on the node itself.
    bindClassInstance(node: Any, inst: unknown) {
      node.__classInstance = inst
      return inst
    },
    findClassInstance(node: Any) {
      for (let n = node; n != null; n = n.parentNode) if (n.__classInstance) return n.__classInstance
      return null
    },
    callClassMethod(node: Any, method: string, ...args: unknown[]) {
      const inst = this.findClassInstance(node)
      return inst && typeof inst[method] === 'function' ? inst[method](...args) : null
    },
  })
  return dom
}

// ---- String.prototype.format (luci.js), installed in the views' realm --------------

export const FORMAT_SOURCE = `
String.prototype.format = function() {
  var args = arguments, n = 0, html = { '&': '&#38;', '"': '&#34;', "'": '&#39;', '<': '&#60;', '>': '&#62;' };
  return this.replace(/%(-)?(0)?(\\d+)?(?:\\.(\\d+))?([%sdufxXhqco])/g, function(m, left, zero, width, prec, type) {
    if (type === '%') return '%';
    var v = args[n++], s;
    switch (type) {
    case 's': s = (v == null || typeof v === 'object' || typeof v === 'function') ? '' : String(v); break;
    case 'd': s = Math.floor(+v || 0).toFixed(0); break;
    case 'u': s = Math.floor(Math.abs(+v || 0)).toFixed(0); break;
    case 'f': s = prec != null ? (+v || 0).toFixed(+prec) : String(+v || 0); break;
    case 'x': s = Math.floor(+v || 0).toString(16); break;
    case 'X': s = Math.floor(+v || 0).toString(16).toUpperCase(); break;
    case 'o': s = Math.floor(+v || 0).toString(8); break;
    case 'c': s = String.fromCharCode(+v || 0); break;
    case 'h': s = String(v == null ? '' : v).replace(/[&"'<>]/g, function(c) { return html[c]; }); break;
    case 'q': s = String(v == null ? '' : v).replace(/["']/g, function(c) { return html[c]; }); break;
    }
    if (width != null) while (s.length < +width) s = left ? s + ' ' : (zero ? '0' : ' ') + s;
    return s;
  });
};
`

// ---- LuCI datatypes (validation.js) ---------------------------------------------------

type DatatypeFn = (this: DtContext, ...args: Any[]) => boolean
type Compiled = Array<DatatypeFn | Compiled | number | string | null>

interface DtContext {
  value: string
  error: string | null
  assert(cond: unknown, msg?: string): boolean
  apply(name: string | DatatypeFn, value: string | null, args?: Any[]): boolean
}

const parseInteger = (x: string) => (/^-?\d+$/.test(x) ? +x : NaN)
const parseDecimal = (x: string) => (/^-?\d+(?:\.\d+)?$/.test(x) ? +x : NaN)

/** LuCI's IPv4 parse: \d{1,3} parts up to 255 (leading zeros allowed). */
function luciIPv4(x: string): number[] | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(x)
  if (!m) return null
  const o = m.slice(1).map(Number)
  return o.some((n) => n > 255) ? null : o
}

/** LuCI's IPv6 parse: hex groups, "::", an optional trailing dotted quad. */
function luciIPv6(x: string): number[] | null {
  const v4tail = /^([a-fA-F0-9:]+):(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/.exec(x)
  if (v4tail) {
    const v4 = luciIPv4(v4tail[2]!)
    if (!v4) return null
    x = `${v4tail[1]}:${(v4[0]! * 256 + v4[1]!).toString(16)}:${(v4[2]! * 256 + v4[3]!).toString(16)}`
  }
  if (!/^[a-fA-F0-9:]+$/.test(x)) return null
  const ps = x.split(/::/)
  if (ps.length > 2) return null
  const prefix = (ps[0] || '0').split(/:/)
  const suffix = ps.length > 1 ? (ps[1] || '0').split(/:/) : []
  if (suffix.length ? prefix.length + suffix.length > 7 : (ps.length < 2 && prefix.length < 8) || prefix.length > 8)
    return null
  const words: number[] = []
  const group = (g: string) => {
    const w = parseInt(g, 16)
    if (g.length > 4 || isNaN(w) || w > 0xffff) return false
    words.push(w)
    return true
  }
  if (!prefix.every(group)) return null
  for (let i = 0; i < 8 - prefix.length - suffix.length; i++) words.push(0)
  if (!suffix.every(group)) return null
  return words
}

function bytelen(s: string): number {
  return Buffer.byteLength(s, 'utf8')
}

const DATATYPES: Record<string, DatatypeFn> = {
  integer() {
    return this.assert(!isNaN(parseInteger(this.value)), 'valid integer value')
  },
  uinteger() {
    return this.assert(parseInteger(this.value) >= 0, 'positive integer value')
  },
  float() {
    return this.assert(!isNaN(parseDecimal(this.value)), 'valid decimal value')
  },
  ufloat() {
    return this.assert(parseDecimal(this.value) >= 0, 'positive decimal value')
  },
  ipaddr(nomask?: unknown) {
    return this.assert(
      this.apply('ip4addr', null, [nomask]) || this.apply('ip6addr', null, [nomask]),
      nomask ? 'valid IP address' : 'valid IP address or prefix',
    )
  },
  ip4addr(nomask?: unknown) {
    const re = nomask ? /^(\d+\.\d+\.\d+\.\d+)$/ : /^(\d+\.\d+\.\d+\.\d+)(?:\/(\d+\.\d+\.\d+\.\d+)|\/(\d{1,2}))?$/
    const m = re.exec(this.value)
    return this.assert(
      m && luciIPv4(m[1]!) && (m[2] ? luciIPv4(m[2]) : m[3] ? this.apply('ip4prefix', m[3]) : true),
      nomask ? 'valid IPv4 address' : 'valid IPv4 address or network',
    )
  },
  ip6addr(nomask?: unknown) {
    const re = nomask ? /^([0-9a-fA-F:.]+)$/ : /^([0-9a-fA-F:.]+)(?:\/(\d{1,3}))?$/
    const m = re.exec(this.value)
    return this.assert(
      m && luciIPv6(m[1]!) && (m[2] ? this.apply('ip6prefix', m[2]) : true),
      nomask ? 'valid IPv6 address' : 'valid IPv6 address or prefix',
    )
  },
  ip4prefix() {
    return this.assert(!isNaN(+this.value) && +this.value >= 0 && +this.value <= 32, 'valid IPv4 prefix value (0-32)')
  },
  ip6prefix() {
    return this.assert(!isNaN(+this.value) && +this.value >= 0 && +this.value <= 128, 'valid IPv6 prefix value (0-128)')
  },
  cidr(negative?: unknown) {
    return this.assert(
      this.apply('cidr4', null, [negative]) || this.apply('cidr6', null, [negative]),
      'valid IPv4 or IPv6 CIDR',
    )
  },
  cidr4(negative?: unknown) {
    const m = /^(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})\/(-)?(\d{1,2})$/.exec(this.value)
    return this.assert(m && luciIPv4(m[1]!) && (negative || !m[2]) && this.apply('ip4prefix', m[3]!), 'valid IPv4 CIDR')
  },
  cidr6(negative?: unknown) {
    const m = /^([0-9a-fA-F:.]+)\/(-)?(\d{1,3})$/.exec(this.value)
    return this.assert(m && luciIPv6(m[1]!) && (negative || !m[2]) && this.apply('ip6prefix', m[3]!), 'valid IPv6 CIDR')
  },
  ipnet4() {
    const m = /^(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})\/(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/.exec(this.value)
    return this.assert(m && luciIPv4(m[1]!) && luciIPv4(m[2]!), 'IPv4 network in address/netmask notation')
  },
  ipnet6() {
    const m = /^([0-9a-fA-F:.]+)\/([0-9a-fA-F:.]+)$/.exec(this.value)
    return this.assert(m && luciIPv6(m[1]!) && luciIPv6(m[2]!), 'IPv6 network in address/netmask notation')
  },
  ipmask(negative?: unknown) {
    return this.assert(
      this.apply('ipmask4', null, [negative]) || this.apply('ipmask6', null, [negative]),
      'valid network in address/netmask notation',
    )
  },
  ipmask4(negative?: unknown) {
    return this.assert(
      this.apply('cidr4', null, [negative]) || this.apply('ipnet4', null) || this.apply('ip4addr', null),
      'valid IPv4 network',
    )
  },
  ipmask6(negative?: unknown) {
    return this.assert(
      this.apply('cidr6', null, [negative]) || this.apply('ipnet6', null) || this.apply('ip6addr', null),
      'valid IPv6 network',
    )
  },
  port() {
    const p = parseInteger(this.value)
    return this.assert(p >= 0 && p <= 65535, 'valid port value')
  },
  portrange() {
    const m = /^(\d+)-(\d+)$/.exec(this.value)
    if (m) return this.assert(+m[1]! <= +m[2]! && +m[2]! <= 65535, 'valid port or port range (port1-port2)')
    return this.assert(this.apply('port', null), 'valid port or port range (port1-port2)')
  },
  macaddr(multicast?: unknown) {
    const m = /^([a-fA-F0-9]{2}):([a-fA-F0-9]{2}:){4}[a-fA-F0-9]{2}$/.exec(this.value)
    // As validation.js: the first octet's parity is read with +m[1], a decimal number.
    return this.assert(
      m != null && !(+m[1]! & 1) === !multicast,
      multicast ? 'valid multicast MAC address' : 'valid MAC address',
    )
  },
  host(ipv4only?: unknown) {
    return this.assert(
      this.apply('hostname', null) || this.apply(ipv4only == 1 ? 'ip4addr' : 'ipaddr', null, ['nomask']),
      'valid hostname or IP address',
    )
  },
  hostname(strict?: unknown) {
    const v = this.value
    if (v.length <= 253) {
      return this.assert(
        (/^[a-zA-Z0-9_]+$/.test(v) || (/^[a-zA-Z0-9_][a-zA-Z0-9_\-.]*[a-zA-Z0-9]$/.test(v) && /[^0-9.]/.test(v))) &&
          (!strict || !/^_/.test(v)),
        'valid hostname',
      )
    }
    return this.assert(false, 'valid hostname')
  },
  hostport(ipv4only?: unknown) {
    const hp = this.value.split(/:/)
    return this.assert(
      hp.length === 2 && this.apply('host', hp[0]!, [ipv4only]) && this.apply('port', hp[1]!),
      'valid host:port',
    )
  },
  uciname() {
    return this.assert(/^[a-zA-Z0-9_]+$/.test(this.value), 'valid UCI identifier')
  },
  netdevname() {
    const v = this.value
    if (v === '.' || v === '..') return this.assert(false, 'valid network device name, not "." or ".."')
    return this.assert(
      /^[^:/%\s]{1,15}$/.test(v),
      'valid network device name between 1 and 15 characters not containing ":", "/", "%" or spaces',
    )
  },
  range(min: unknown, max: unknown) {
    const v = parseDecimal(this.value)
    return this.assert(v >= Number(min) && v <= Number(max), `value between ${min} and ${max}`)
  },
  min(min: unknown) {
    return this.assert(parseDecimal(this.value) >= Number(min), `value greater or equal to ${min}`)
  },
  max(max: unknown) {
    return this.assert(parseDecimal(this.value) <= Number(max), `value smaller or equal to ${max}`)
  },
  length(len: unknown) {
    return this.assert(bytelen(this.value) === Number(len), `value with ${len} characters`)
  },
  rangelength(min: unknown, max: unknown) {
    const l = bytelen(this.value)
    return this.assert(l >= Number(min) && l <= Number(max), `value between ${min} and ${max} characters`)
  },
  minlength(min: unknown) {
    return this.assert(bytelen(this.value) >= Number(min), `value with at least ${min} characters`)
  },
  maxlength(max: unknown) {
    return this.assert(bytelen(this.value) <= Number(max), `value with at most ${max} characters`)
  },
  or(...args: Any[]) {
    const errors: string[] = []
    for (let i = 0; i < args.length; i += 2) {
      if (typeof args[i] !== 'function') {
        if (args[i] == this.value) return this.assert(true)
        errors.push(`"${args[i]}"`)
        i--
      } else if (args[i].apply(this, args[i + 1] ?? [])) {
        return this.assert(true)
      } else {
        errors.push(this.error ?? '')
      }
    }
    return this.assert(false, `One of the following: \n - ${errors.join('\n - ')}`)
  },
  and(...args: Any[]) {
    for (let i = 0; i < args.length; i += 2) {
      if (typeof args[i] !== 'function') {
        if (args[i] != this.value) return this.assert(false, `"${args[i]}"`)
        i--
      } else if (!args[i].apply(this, args[i + 1] ?? [])) {
        return this.assert(false, this.error ?? '')
      }
    }
    return this.assert(true)
  },
  neg(fn: Any, fnArgs: Any) {
    this.value = this.value.replace(/^[ \t]*![ \t]*/, '')
    if (fn.apply(this, fnArgs ?? [])) return this.assert(true)
    return this.assert(false, `Potential negation of: ${this.error}`)
  },
  list(fn: Any, fnArgs: Any) {
    const tokens = this.value.match(/[^ \t]+/g) ?? []
    for (const t of tokens) if (!this.apply(fn, t, fnArgs)) return this.assert(false, this.error ?? '')
    return this.assert(true)
  },
  hexstring() {
    return this.assert(/^([A-F0-9]{2})+$/i.test(this.value), 'hexadecimal encoded value')
  },
  string() {
    return true
  },
  directory() {
    return true
  },
  file() {
    return true
  },
  device() {
    return true
  },
}

/**
 * validation.js's expression compiler: `and(uinteger,max(10))` → [and, [uinteger,
 * null, max, [10]]]. An unknown name throws (LuCI's compile raises a
 * SyntaxError, and ui.addValidator then silently drops all validation).
 */
export function compileDatatype(code: string): Compiled {
  const stack: Compiled = []
  let pos = 0
  let depth = 0
  let esc = false
  code += ','
  for (let i = 0; i < code.length; i++) {
    if (esc) {
      esc = false
      continue
    }
    const c = code.charCodeAt(i)
    if (c === 92) {
      esc = true
    } else if (c === 40 || c === 44) {
      if (depth <= 0) {
        if (pos < i) {
          const label = code.substring(pos, i).replace(/\\(.)/g, '$1').trim()
          if (label && !isNaN(Number(label))) stack.push(parseFloat(label))
          else if (/^(['"]).*\1$/.test(label)) stack.push(label.slice(1, -1))
          else if (Object.hasOwn(DATATYPES, label)) stack.push(DATATYPES[label]!, null)
          else throw new SyntaxError(`Unhandled token "${label}" in datatype ${JSON.stringify(code.slice(0, -1))}`)
        }
        pos = i + 1
      }
      if (c === 40) depth++
    } else if (c === 41) {
      if (--depth <= 0) {
        if (typeof stack[stack.length - 2] !== 'function') throw new SyntaxError('Argument list follows non-function')
        stack[stack.length - 1] = compileDatatype(code.substring(pos, i))
        pos = i + 1
      }
    }
  }
  return stack
}

/** Check one non-empty value against a datatype expression: true or LuCI's message. */
export function checkDatatype(code: string, value: string): true | string {
  const stack = compileDatatype(code)
  const ctx: DtContext = {
    value,
    error: null,
    assert(cond, msg) {
      if (!cond) {
        this.error = msg ?? this.error
        return false
      }
      this.error = null
      return true
    },
    apply(name, v, args) {
      const fn = typeof name === 'function' ? name : DATATYPES[name]
      if (!fn) return false
      if (v != null) this.value = v
      return fn.apply(this, args ?? [])
    },
  }
  const fn = stack[0] as DatatypeFn
  const ok = fn.apply(ctx, (stack[1] as Any[] | null) ?? [])
  return ok === true ? true : `Expecting: ${ctx.error}`
}

// ---- uci --------------------------------------------------------------------------------

type UciValues = Record<string, Any>

/** What an ACL file grants, as rpcd computes it for a session with all its groups. */
export interface Grants {
  ubus: Set<string> // "object.method"
  uciRead: Set<string>
  uciWrite: Set<string>
}

/** rpcd session.c: every group's read and write scopes (table or array notation). */
export function aclGrants(aclJson: unknown): Grants {
  const grants: Grants = { ubus: new Set(), uciRead: new Set(), uciWrite: new Set() }
  for (const group of Object.values(aclJson as Record<string, Any>)) {
    for (const perm of ['read', 'write']) {
      const scopes = group?.[perm]
      if (scopes === null || typeof scopes !== 'object' || Array.isArray(scopes)) continue
      for (const [scope, objects] of Object.entries(scopes as Record<string, Any>)) {
        const pairs: Array<[string, string]> = []
        if (Array.isArray(objects)) for (const o of objects) pairs.push([String(o), perm])
        else if (objects && typeof objects === 'object') {
          for (const [obj, fns] of Object.entries(objects as Record<string, Any>)) {
            if (Array.isArray(fns)) for (const f of fns) if (typeof f === 'string') pairs.push([obj, f])
          }
        }
        for (const [obj, fn] of pairs) {
          if (scope === 'ubus') grants.ubus.add(`${obj}.${fn}`)
          if (scope === 'uci' && fn === 'read') grants.uciRead.add(obj)
          if (scope === 'uci' && fn === 'write') grants.uciWrite.add(obj)
        }
      }
    }
  }
  return grants
}

function makeUci(session: Session): Any {
  const values: Record<string, Record<string, UciValues>> = {}
  let created = 0
  const uci = {
    /** Change log: [op, ...args], for assertions. */
    log: [] as unknown[][],
    load(packages: string | string[]) {
      const list = Array.isArray(packages) ? packages : [packages]
      for (const conf of list) {
        session.uciLoads.add(conf)
        if (values[conf]) continue
        values[conf] = {}
        if (session.grants && !session.grants.uciRead.has(conf)) continue // rpcd: access denied → uci.js loads nothing
        const text = session.uciText[conf]
        if (text === undefined) continue
        const pkg = parseUci(text, `/etc/config/${conf}`)
        pkg.sections.forEach((s: UciSection, i: number) => {
          const sid = s.name ?? uciAnonymousName(s.type, i)
          const v: UciValues = { '.name': sid, '.type': s.type, '.anonymous': s.name === null, '.index': i }
          for (const [k, val] of s.options) v[k] = Array.isArray(val) ? [...val] : val
          values[conf]![sid] = v
        })
      }
      return Promise.resolve(list)
    },
    unload(packages: string | string[]) {
      for (const conf of Array.isArray(packages) ? packages : [packages]) delete values[conf]
    },
    resolveSID(conf: string, sid: string): string | null {
      const m = /^@([^[]+)\[(-?\d+)\]$/.exec(String(sid))
      if (!m) return sid
      const list = this.sections(conf, m[1])
      const n = Number(m[2])
      const s = list[n < 0 ? list.length + n : n]
      return s ? s['.name'] : null
    },
    sections(conf: string, type?: string, cb?: (s: UciValues, sid: string) => void): UciValues[] {
      const list = Object.values(values[conf] ?? {})
        .filter((s) => !type || s['.type'] === type)
        .sort((a, b) => a['.index'] - b['.index'])
        .map((s, i): UciValues => ({ ...s, ...copyLists(s), '.index': i })) // uci.js numbers the returned list
      if (typeof cb === 'function') list.forEach((s) => cb.call(uci, s, s['.name']))
      return list
    },
    get(conf: string, sid: string, opt?: string): Any {
      const id = this.resolveSID(conf, sid)
      const s = id == null ? undefined : values[conf]?.[id]
      if (!s) return null
      if (opt == null) return { ...s, ...copyLists(s) }
      const v = s[opt]
      return Array.isArray(v) ? [...v] : v
    },
    get_first(conf: string, type?: string, opt?: string): Any {
      const s = this.sections(conf, type)[0]
      if (!s) return null
      return opt == null ? s : s[opt]
    },
    set(conf: string, sid: string, opt: string, val: unknown) {
      const id = this.resolveSID(conf, sid)
      const s = id == null ? undefined : values[conf]?.[id]
      if (!s || opt.startsWith('.')) return
      uci.log.push(['set', conf, id, opt, val])
      // uci.js: null or '' deletes the option
      if (val == null || val === '') delete s[opt]
      else s[opt] = Array.isArray(val) ? val.map(String) : String(val)
    },
    unset(conf: string, sid: string, opt: string) {
      return this.set(conf, sid, opt, null)
    },
    add(conf: string, type: string, name?: string): string {
      values[conf] ??= {}
      const sid = name || `new${(0x100000 + created++).toString(16).slice(-6)}`
      const index = Object.keys(values[conf]!).length
      values[conf]![sid] = { '.name': sid, '.type': type, '.anonymous': !name, '.index': index }
      uci.log.push(['add', conf, type, sid])
      return sid
    },
    remove(conf: string, sid: string) {
      const id = this.resolveSID(conf, sid)
      if (id != null && values[conf]?.[id]) {
        delete values[conf]![id]
        uci.log.push(['remove', conf, id])
      }
    },
    move(conf: string, sid1: string, sid2: string | null, after?: boolean) {
      const list = this.sections(conf).map((s) => s['.name'] as string)
      const from = list.indexOf(sid1)
      if (from < 0) return false
      list.splice(from, 1)
      let to = sid2 == null ? list.length : list.indexOf(sid2)
      if (to < 0) return false
      if (after) to++
      list.splice(to, 0, sid1)
      list.forEach((sid, i) => {
        values[conf]![sid]!['.index'] = i
      })
      uci.log.push(['move', conf, sid1, sid2, !!after])
      return true
    },
    save() {
      for (const conf of Object.keys(values)) {
        if (session.grants && !session.grants.uciWrite.has(conf) && uci.log.some((e) => e[1] === conf)) {
          return Promise.reject(new Error(`RPCError: uci write access to "${conf}" denied`))
        }
      }
      session.saves++
      return Promise.resolve()
    },
    apply() {
      return Promise.resolve()
    },
    /** The package as uci text (`uci export` format), for feeding it to the daemon. */
    export(conf: string): string {
      const pkg: UciPackage = { name: null, sections: [] }
      for (const s of this.sections(conf)) {
        const options = new Map<string, string | string[]>()
        for (const [k, v] of Object.entries(s)) {
          if (k.startsWith('.')) continue
          if (Array.isArray(v) ? v.length > 0 : v !== '' && v != null) options.set(k, v)
        }
        pkg.sections.push({
          type: s['.type'],
          name: s['.anonymous'] ? null : s['.name'],
          index: pkg.sections.length,
          options,
          line: 0,
        })
      }
      return writeUci(pkg)
    },
  }
  return uci
}

function copyLists(s: UciValues): UciValues {
  const out: UciValues = {}
  for (const [k, v] of Object.entries(s)) if (Array.isArray(v)) out[k] = [...v]
  return out
}

// ---- rpc, poll, ui ---------------------------------------------------------------------

/** An rpc.declare() call, as the view made it. */
export interface RpcDeclaration {
  object: string
  method: string
  params?: string[]
  expect?: Record<string, unknown>
}

export interface RpcCall {
  object: string
  method: string
  params: Record<string, unknown>
}

/** A handler's answer: the reply object, or { ubusStatus: N } for a failed ubus call. */
export type RpcHandler = (params: Record<string, unknown>) => unknown

function makeRpc(session: Session, baseclass: Any): Any {
  return baseclass.singleton({
    __name__: 'LuCI.rpc',
    declare(options: Any) {
      const decl: RpcDeclaration = { object: options.object, method: options.method }
      if (options.params !== undefined) decl.params = [...options.params]
      if (options.expect !== undefined) decl.expect = options.expect
      session.declared.push(decl)
      return (...args: unknown[]) => {
        const params: Record<string, unknown> = {}
        let off = 0
        if (Array.isArray(options.params))
          for (; off < options.params.length; off++) params[options.params[off]] = args[off]
        const priv: unknown[] = [undefined, undefined, ...args.slice(off)]
        session.calls.push({ object: options.object, method: options.method, params })
        return Promise.resolve().then(() => {
          // What uhttpd's /ubus answers (checked against the real uhttpd and
          // rpcd): an object ubusd does not know, or a call the session's ACL
          // does not grant, is a JSON-RPC error (-32000 "Object not found",
          // -32002 "Access denied"), which rpc.js always turns into a rejection
          // whatever `reject` says. Otherwise the ubus reply: [status] on
          // failure (3: method not found), [0, data] on success.
          const key = `${options.object}.${options.method}`
          const handler = session.rpcHandlers[key]
          const objectKnown = Object.keys(session.rpcHandlers).some((k) => k.startsWith(`${options.object}.`))
          const rpcError = (code: number, message: string) =>
            new Error(`RPCError: RPC call to ${options.object}/${options.method} failed with error ${code}: ${message}`)
          if (!objectKnown) throw rpcError(-32000, 'Object not found')
          if (session.grants && !session.grants.ubus.has(key)) throw rpcError(-32002, 'Access denied')
          let result: unknown[]
          if (handler === undefined)
            result = [3] // method not found
          else {
            const answer = handler(params) as Any
            result = answer && typeof answer === 'object' && 'ubusStatus' in answer ? [answer.ubusStatus] : [0, answer]
          }
          if (options.reject && result[0] !== 0)
            throw new Error(
              `RPCError: RPC call to ${options.object}/${options.method} failed with ubus code ${result[0]}`,
            )
          let ret: Any = result.length > 1 ? result[1] : result[0]
          // rpc.js handleCallReply: expect picks a key and replaces a missing or mistyped value
          if (options.expect) {
            for (const k of Object.keys(options.expect)) {
              if (ret != null && k !== '') ret = ret[k]
              if (
                ret == null ||
                Object.prototype.toString.call(ret) !== Object.prototype.toString.call(options.expect[k])
              )
                ret = options.expect[k]
              break
            }
          }
          if (typeof options.filter === 'function') {
            priv[0] = ret
            priv[1] = params
            ret = options.filter(...priv)
          }
          return ret
        })
      }
    },
  })
}

/** A poll.add() registration. */
export interface PollEntry {
  fn: () => unknown
  interval: number
}

function makePoll(session: Session, baseclass: Any): Any {
  return baseclass.singleton({
    __name__: 'LuCI.poll',
    add(fn: Any, interval: Any) {
      if (interval == null || interval <= 0) interval = 5 // L.env.pollinterval
      if (isNaN(interval) || typeof fn !== 'function') throw new TypeError('Invalid argument to LuCI.poll.add()')
      if (session.polls.some((e) => e.fn === fn)) return false
      session.polls.push({ fn, interval: interval >>> 0 })
      return true
    },
    remove(fn: Any) {
      const before = session.polls.length
      session.polls = session.polls.filter((e) => e.fn !== fn)
      return session.polls.length !== before
    },
    start() {
      return true
    },
    stop() {
      return true
    },
    active() {
      return true
    },
  })
}

function makeUi(session: Session, baseclass: Any): Any {
  return baseclass.singleton({
    __name__: 'LuCI.ui',
    addNotification(title: unknown, children: unknown, ...classes: string[]) {
      session.notifications.push({ title, text: textOf(children), classes })
      return new FakeNode(1, 'div')
    },
    showModal(title: unknown, children: unknown) {
      session.modals.push({ title, text: textOf(children) })
      return new FakeNode(1, 'div')
    },
    hideModal() {},
    createHandlerFn(ctx: Any, fn: Any, ...args: unknown[]) {
      const f = typeof fn === 'string' ? ctx[fn] : fn
      return (ev: unknown) => f.call(ctx, ...args, ev)
    },
    addValidator() {
      return () => true
    },
    changes: { apply() {}, setIndicator() {} },
  })
}

// ---- form ------------------------------------------------------------------------------

/** The state of one widget LuCI would have drawn (see the header comment). */
interface Widget {
  option: Any
  sid: string
  kind: 'text' | 'select' | 'dynlist' | 'multi' | 'checkbox' | 'none'
  value: string | string[] | boolean
  hidden: boolean
}

/** Value equality as form.js isEqual (arrays element-wise, strings loosely). */
function isEqual(x: Any, y: Any): boolean {
  if (y instanceof RegExp) return x == null ? false : y.test(x)
  if (x != null && y != null && typeof x !== typeof y) return false
  if ((x == null) !== (y == null)) return false
  if (Array.isArray(x)) {
    if (!Array.isArray(y) || x.length !== y.length) return false
    return x.every((v, i) => isEqual(v, y[i]))
  }
  if (x !== null && typeof x === 'object') {
    const kx = Object.keys(x)
    const ky = Object.keys(y)
    return kx.length === ky.length && kx.every((k) => Object.hasOwn(y, k) && isEqual(x[k], y[k]))
  }
  return x == y
}

function isContained(x: Any, y: Any): boolean {
  if (Array.isArray(x)) return x.some((v) => v == y)
  if (x !== null && typeof x === 'object') return Object.hasOwn(x, y) && x[y] != null
  if (typeof x === 'string') return x.includes(y)
  return false
}

function toArray(val: Any): Any[] {
  if (val == null) return []
  if (Array.isArray(val)) return val
  if (typeof val === 'object') return [val]
  const s = String(val).trim()
  return s === '' ? [] : s.split(/\s+/)
}

function makeForm(session: Session, baseclass: Any, uci: Any): Any {
  const AbstractElement = baseclass.extend({
    __name__: 'CBI.AbstractElement',
    __init__(this: Any, title?: string, description?: string) {
      this.title = title || ''
      this.description = description || ''
      this.children = []
    },
    append(this: Any, obj: Any) {
      this.children.push(obj)
    },
    parse(this: Any, ...args: unknown[]) {
      this.children.forEach((c: Any) => c.parse(...args))
    },
    loadChildren(this: Any, ...args: unknown[]) {
      return Promise.all(this.children.filter((c: Any) => !c.disable).map((c: Any) => c.load(...args)))
    },
    stripTags(s: unknown) {
      return typeof s === 'string' ? s.replace(/<[^>]*>/g, '') : textOf(s)
    },
    titleFn(this: Any, attr: string, ...args: unknown[]) {
      let s = null
      if (typeof this[attr] === 'function') s = this[attr](...args)
      else if (typeof this[attr] === 'string') s = this[attr]
      s = s == null ? null : String(s).trim()
      return s === '' ? null : s
    },
  })

  const Map = AbstractElement.extend({
    __name__: 'CBI.Map',
    __init__(this: Any, config: string, ...rest: unknown[]) {
      this.super('__init__', rest)
      this.config = config
      this.parsechain = [config]
      this.data = uci
      this.widgets = new globalThis.Map<string, Widget>()
    },
    section(this: Any, cls: Any, ...args: unknown[]) {
      if (!AbstractSection.isSubclass(cls)) throw new TypeError('Class must be a descendent of CBIAbstractSection')
      const obj = cls.instantiate([this, ...args])
      this.append(obj)
      return obj
    },
    chain(this: Any, config: string) {
      if (!this.parsechain.includes(config)) this.parsechain.push(config)
    },
    load(this: Any) {
      if (session.grants && this.readonly == null && !session.grants.uciWrite.has(this.config)) this.readonly = true
      return Promise.all(this.parsechain.map((c: string) => this.data.load(c))).then(() => this.loadChildren())
    },
    parse(this: Any) {
      return Promise.all(this.children.map((c: Any) => c.parse()))
    },
    save(this: Any, cb?: () => unknown, silent?: boolean) {
      this.checkDepends()
      return this.parse()
        .then(cb)
        .then(() => this.data.save())
        .then(() => this.load())
        .then(() => this.renderContents())
        .catch((e: unknown) => {
          if (!silent) session.modals.push({ title: 'Save error', text: e instanceof Error ? e.message : String(e) })
          return Promise.reject(e)
        })
    },
    reset(this: Any) {
      return this.renderContents()
    },
    render(this: Any) {
      return this.load().then(() => this.renderContents())
    },
    /** Draw the widgets: one per (section, option) that LuCI renders, holding the loaded value. */
    renderContents(this: Any) {
      this.root ??= new FakeNode(1, 'div', '')
      this.root.setAttribute('class', 'cbi-map')
      this.root.setAttribute('id', `cbi-${this.config}`)
      this.widgets.clear()
      for (const s of this.children) {
        if (s.disable) continue
        for (const sid of s.cfgsections()) {
          if (this.data.get(s.uciconfig || this.config, sid) == null) continue
          for (const o of s.children) {
            if (o.disable || o.modalonly === false) continue
            this.widgets.set(o.cbid(sid), o.createWidget(sid))
          }
        }
      }
      // the root "has children" once drawn (AbstractSection.formvalue looks at that)
      this.root.textContent = this.title || this.config
      if (!session.maps.includes(this)) session.maps.push(this)
      this.checkDepends()
      return Promise.resolve(this.root)
    },
    findElement() {
      return null
    },
    lookupOption(this: Any, name: string, sectionId: string, configName?: string) {
      let config = configName || this.config
      let sid = sectionId
      let opt = name
      if (name.includes('.')) [config, sid, opt] = name.split('.') as [string, string, string]
      for (const s of this.children) {
        if ((s.uciconfig || this.config) !== config) continue
        for (const o of s.children) {
          if (o.option === opt && this.widgets.has(o.cbid(sid))) return [o, sid]
        }
      }
      return null
    },
    /** form.js isDependencySatisfied: any dependency object whose every field matches. */
    isDependencySatisfied(this: Any, depends: Any[], configName: string, sectionId: string) {
      let def = false
      if (!Array.isArray(depends) || !depends.length) return true
      for (const dep of depends) {
        let istat = true
        const reverse = dep['!reverse']
        const contains = dep['!contains']
        for (const field of Object.keys(dep)) {
          if (field === '!reverse' || field === '!contains') continue
          if (field === '!default') {
            def = true
            istat = false
            continue
          }
          const name = field.includes('.') ? field : `${configName}.${sectionId}.${field}`
          const res = this.lookupOption(name, sectionId, configName)
          const val = res && res[0].isActive(res[1]) ? res[0].formvalue(res[1]) : null
          istat = istat && (contains ? isContained(val, dep[field]) : isEqual(val, dep[field]))
        }
        if (istat !== !!reverse) return true
      }
      return def
    },
    /** Hide or show widgets by their depends, until nothing changes (form.js loops up to 10 times). */
    checkDepends(this: Any) {
      for (let round = 0; round < 10; round++) {
        let changed = false
        for (const w of this.widgets.values()) {
          const active = w.option.checkDepends(w.sid)
          if (active === w.hidden) {
            w.hidden = !active
            changed = true
          }
        }
        if (!changed) break
      }
    },
  })

  const AbstractSection = AbstractElement.extend({
    __name__: 'CBI.AbstractSection',
    __init__(this: Any, map: Any, sectionType: string, ...rest: unknown[]) {
      this.super('__init__', rest)
      this.sectiontype = sectionType
      this.map = map
      this.config = map.config
      this.optional = true
      this.addremove = false
      this.dynamic = false
    },
    cfgsections() {
      throw new Error('InternalError: Not implemented')
    },
    filter() {
      return true
    },
    load(this: Any) {
      const sids: string[] = this.cfgsections()
      return Promise.all(
        sids.map((sid) =>
          this.loadChildren(sid).then((values: unknown[]) => {
            values.forEach((v, i) => this.children[i].cfgvalue(sid, v))
          }),
        ),
      )
    },
    parse(this: Any) {
      const tasks: Promise<unknown>[] = []
      for (const sid of this.cfgsections()) for (const o of this.children) tasks.push(o.parse(sid))
      return Promise.all(tasks)
    },
    tab(this: Any, name: string, title: string, description?: string) {
      if (this.tabs && this.tabs[name]) throw new Error('Tab already declared')
      const entry = { name, title, description, children: [] as Any[] }
      this.tabs = this.tabs || []
      this.tabs.push(entry)
      this.tabs[name] = entry
      this.tab_names = this.tab_names || []
      this.tab_names.push(name)
    },
    option(this: Any, cls: Any, ...args: unknown[]) {
      if (!AbstractValue.isSubclass(cls)) throw new TypeError('Class must be a descendent of CBIAbstractValue')
      const obj = cls.instantiate([this.map, this, ...args])
      this.append(obj)
      return obj
    },
    taboption(this: Any, tabName: string, ...args: unknown[]) {
      if (!this.tabs || !this.tabs[tabName]) throw new ReferenceError('Associated tab not declared')
      const obj = this.option(...args)
      obj.tab = tabName
      this.tabs[tabName].children.push(obj)
      return obj
    },
    cfgvalue(this: Any, sid: string, option?: string) {
      const rv: Any = option === undefined ? {} : null
      for (const o of this.children) {
        if (rv) rv[o.option] = o.cfgvalue(sid)
        else if (o.option === option) return o.cfgvalue(sid)
      }
      return rv
    },
    formvalue(this: Any, sid: string, option?: string) {
      const rv: Any = option === undefined ? {} : null
      for (const o of this.children) {
        const v = this.map.root ? o.formvalue(sid) : o.cfgvalue(sid)
        if (rv) rv[o.option] = v
        else if (o.option === option) return v
      }
      return rv
    },
    getUIElement(this: Any, sid: string, option: string) {
      const o = this.getOption(option)
      return o ? o.getUIElement(sid) : null
    },
    getOption(this: Any, option?: string) {
      if (option === undefined) return Object.fromEntries(this.children.map((o: Any) => [o.option, o]))
      return this.children.find((o: Any) => o.option === option) ?? null
    },
  })

  const TypedSection = AbstractSection.extend({
    __name__: 'CBI.TypedSection',
    cfgsections(this: Any) {
      return this.map.data
        .sections(this.uciconfig || this.map.config, this.sectiontype)
        .map((s: Any) => s['.name'])
        .filter((sid: string) => this.filter(sid))
    },
    handleAdd(this: Any, _ev: unknown, name?: string) {
      const sid = this.map.data.add(this.uciconfig || this.map.config, this.sectiontype, name)
      return this.map.save(null, true).then(() => sid)
    },
    handleRemove(this: Any, sid: string) {
      this.map.data.remove(this.uciconfig || this.map.config, sid)
      return this.map.save(null, true)
    },
  })

  const TableSection = TypedSection.extend({
    __name__: 'CBI.TableSection',
    tab() {
      throw new Error('Tabs are not supported by TableSection')
    },
  })

  const GridSection = TableSection.extend({
    __name__: 'CBI.GridSection',
    tab(this: Any, name: string, title: string, description?: string) {
      AbstractSection.prototype.tab.call(this, name, title, description)
    },
    // LuCI adds the section and opens its modal for it: the page's other
    // widgets keep what was typed into them (nothing is saved or redrawn).
    handleAdd(this: Any, _ev: unknown, name?: string) {
      const sid = this.map.data.add(this.uciconfig || this.map.config, this.sectiontype, name)
      for (const o of this.children)
        if (!o.disable && o.modalonly !== false) this.map.widgets.set(o.cbid(sid), o.createWidget(sid))
      this.map.checkDepends()
      return Promise.resolve(sid)
    },
    // LuCI's grid parses only its editable columns; the rest is parsed by
    // the modal of each row. Here every row is taken as edited in its modal.
    parse(this: Any) {
      const tasks: Promise<unknown>[] = []
      for (const sid of this.cfgsections())
        for (const o of this.children) if (o.modalonly !== false) tasks.push(o.parse(sid))
      return Promise.all(tasks)
    },
  })

  const NamedSection = AbstractSection.extend({
    __name__: 'CBI.NamedSection',
    __init__(this: Any, map: Any, sectionId: string, ...rest: unknown[]) {
      this.super('__init__', [map, ...rest])
      this.section = sectionId
    },
    cfgsections(this: Any) {
      return [this.section]
    },
    // As LuCI: "Add" creates the section under its fixed name, "Remove" deletes it; both save.
    handleAdd(this: Any) {
      this.map.data.add(this.uciconfig || this.map.config, this.sectiontype, this.section)
      return this.map.save(null, true).then(() => this.section)
    },
    handleRemove(this: Any) {
      this.map.data.remove(this.uciconfig || this.map.config, this.section)
      return this.map.save(null, true)
    },
  })

  const AbstractValue = AbstractElement.extend({
    __name__: 'CBI.AbstractValue',
    __init__(this: Any, map: Any, section: Any, option: string, ...rest: unknown[]) {
      this.super('__init__', rest)
      this.section = section
      this.option = option
      this.map = map
      this.config = map.config
      this.deps = []
      this.initial = {}
      this.rmempty = true
      this.default = null
      this.size = null
      this.optional = false
      this.retain = false
    },
    depends(this: Any, field: Any, value?: unknown) {
      this.deps.push(typeof field === 'string' ? { [field]: value } : field)
    },
    transformChoices(this: Any) {
      if (!Array.isArray(this.keylist) || this.keylist.length === 0) return null
      const choices: Record<string, unknown> = {}
      this.keylist.forEach((k: string, i: number) => {
        choices[k] = this.vallist[i]
      })
      return choices
    },
    checkDepends(this: Any, sid: string) {
      return this.map.isDependencySatisfied(this.deps, this.uciconfig || this.section.uciconfig || this.map.config, sid)
    },
    cbid(this: Any, sid: string) {
      if (sid == null) throw new TypeError('Section ID required')
      return `cbid.${this.uciconfig || this.section.uciconfig || this.map.config}.${sid}.${this.option}`
    },
    load(this: Any, sid: string) {
      if (sid == null) throw new TypeError('Section ID required')
      return this.map.data.get(
        this.uciconfig || this.section.uciconfig || this.map.config,
        this.ucisection || sid,
        this.ucioption || this.option,
      )
    },
    /** The widget this option would draw for one section (stand-in for renderWidget). */
    createWidget(this: Any, sid: string): Widget {
      const cfg = this.cfgvalue(sid)
      const value = cfg != null ? cfg : this.default
      return {
        option: this,
        sid,
        kind: 'text',
        value: Array.isArray(value) ? value.join(' ') : value == null ? '' : String(value),
        hidden: false,
      }
    },
    getUIElement(this: Any, sid: string) {
      const w: Widget | undefined = this.map.widgets.get(this.cbid(sid))
      if (!w) return null
      return {
        getValue: () => widgetValue(w),
        setValue: (v: Any) => {
          w.value = v
        },
        isValid: () => checkWidget(w) === true,
        getValidationError: () => {
          const r = checkWidget(w)
          return r === true ? '' : r
        },
        isChecked: () => w.value === true,
        triggerValidation: () => false,
      }
    },
    cfgvalue(this: Any, sid: string, ...set: unknown[]) {
      if (sid == null) throw new TypeError('Section ID required')
      if (set.length === 1) {
        this.data = this.data || {}
        this.data[sid] = set[0]
      }
      return this.data ? this.data[sid] : null
    },
    formvalue(this: Any, sid: string) {
      const elem = this.getUIElement(sid)
      return elem ? elem.getValue() : null
    },
    textvalue(this: Any, sid: string) {
      let v = this.cfgvalue(sid)
      if (v == null) v = this.default
      if (Array.isArray(v)) v = v.join(' ')
      return v != null ? String(v) : null
    },
    validate() {
      return true
    },
    isValid(this: Any, sid: string) {
      const elem = this.getUIElement(sid)
      return elem ? elem.isValid() : true
    },
    getValidationError(this: Any, sid: string) {
      const elem = this.getUIElement(sid)
      return elem ? elem.getValidationError() : ''
    },
    isActive(this: Any, sid: string) {
      const w: Widget | undefined = this.map.widgets.get(this.cbid(sid))
      return w !== undefined && !w.hidden
    },
    setActive(this: Any, sid: string, active: boolean) {
      const w: Widget | undefined = this.map.widgets.get(this.cbid(sid))
      if (!w || w.hidden !== active) return false
      w.hidden = !active
      return true
    },
    triggerValidation() {
      return false
    },
    /** form.js AbstractValue.parse: reject invalid input, remove empty values, write changed ones. */
    parse(this: Any, sid: string) {
      const active = this.isActive(sid)
      const title = this.stripTags(this.displayname || this.title).trim() || this.option
      if (active && !this.isValid(sid)) {
        return Promise.reject(
          new TypeError(`Option "${title}" contains an invalid input value. ${this.getValidationError(sid)}`),
        )
      }
      if (active) {
        const cval = this.cfgvalue(sid)
        const fval = this.formvalue(sid)
        if (fval == null || fval == '') {
          if (this.rmempty || this.optional) return Promise.resolve(this.remove(sid))
          return Promise.reject(new TypeError(`Option "${title}" must not be empty.`))
        }
        if (this.forcewrite || !isEqual(cval, fval)) return Promise.resolve(this.write(sid, fval))
      } else if (!this.retain) {
        return Promise.resolve(this.remove(sid))
      }
      return Promise.resolve()
    },
    write(this: Any, sid: string, value: unknown) {
      return this.map.data.set(
        this.uciconfig || this.section.uciconfig || this.map.config,
        this.ucisection || sid,
        this.ucioption || this.option,
        value,
      )
    },
    remove(this: Any, sid: string) {
      const cfg = this.uciconfig || this.section.uciconfig || this.map.config
      const opt = this.ucioption || this.option
      // another active option writing the same uci option keeps it
      for (const sib of this.section.children) {
        if (sib === this || sib.ucioption == null) continue
        if ((sib.ucioption || sib.option) === opt && sib.isActive(sid)) return
      }
      this.map.data.unset(cfg, this.ucisection || sid, opt)
    },
  })

  const Value = AbstractValue.extend({
    __name__: 'CBI.Value',
    value(this: Any, key: unknown, val?: unknown) {
      this.keylist = this.keylist || []
      this.keylist.push(String(key))
      this.vallist = this.vallist || []
      this.vallist.push(val instanceof FakeNode ? val : String(val != null ? val : key))
    },
    clear(this: Any) {
      this.keylist = this.vallist = null
    },
  })

  const DynamicList = Value.extend({
    __name__: 'CBI.DynamicList',
    createWidget(this: Any, sid: string): Widget {
      const cfg = this.cfgvalue(sid)
      return {
        option: this,
        sid,
        kind: 'dynlist',
        value: toArray(cfg != null ? cfg : this.default).map(String),
        hidden: false,
      }
    },
  })

  const ListValue = Value.extend({
    __name__: 'CBI.ListValue',
    __init__(this: Any, ...args: unknown[]) {
      this.super('__init__', args)
      this.widget = 'select'
      this.orientation = 'horizontal'
      this.deplist = []
    },
    createWidget(this: Any, sid: string): Widget {
      const cfg = this.cfgvalue(sid)
      const v = cfg != null ? cfg : this.default
      return { option: this, sid, kind: 'select', value: v == null ? '' : String(v), hidden: false }
    },
  })

  const FlagValue = Value.extend({
    __name__: 'CBI.FlagValue',
    __init__(this: Any, ...args: unknown[]) {
      this.super('__init__', args)
      this.enabled = '1'
      this.disabled = '0'
      this.default = this.disabled
    },
    createWidget(this: Any, sid: string): Widget {
      const cfg = this.cfgvalue(sid)
      return {
        option: this,
        sid,
        kind: 'checkbox',
        value: (cfg != null ? cfg : this.default) == this.enabled,
        hidden: false,
      }
    },
    formvalue(this: Any, sid: string) {
      const elem = this.getUIElement(sid)
      return elem && elem.isChecked() ? this.enabled : this.disabled
    },
    textvalue(this: Any, sid: string) {
      const v = this.cfgvalue(sid)
      return (v != null ? v : this.default) == this.enabled ? 'Yes' : 'No'
    },
    parse(this: Any, sid: string) {
      if (this.isActive(sid)) {
        const fval = this.formvalue(sid)
        if (!this.isValid(sid))
          return Promise.reject(new TypeError(`Option "${this.title || this.option}" contains an invalid input value.`))
        if (fval == this.default && (this.optional || this.rmempty)) return Promise.resolve(this.remove(sid))
        return Promise.resolve(this.write(sid, fval))
      }
      if (!this.retain) return Promise.resolve(this.remove(sid))
      return Promise.resolve()
    },
  })

  const MultiValue = DynamicList.extend({
    __name__: 'CBI.MultiValue',
    __init__(this: Any, ...args: unknown[]) {
      this.super('__init__', args)
      this.placeholder = '-- Please choose --'
    },
    createWidget(this: Any, sid: string): Widget {
      const cfg = this.cfgvalue(sid)
      return {
        option: this,
        sid,
        kind: 'multi',
        value: toArray(cfg != null ? cfg : this.default).map(String),
        hidden: false,
      }
    },
  })

  const display = (name: string) =>
    Value.extend({
      __name__: name,
      createWidget(this: Any, sid: string): Widget {
        return { option: this, sid, kind: 'none', value: '', hidden: false }
      },
      parse() {
        return Promise.resolve()
      },
    })

  const TextValue = Value.extend({ __name__: 'CBI.TextValue' })
  const HiddenValue = Value.extend({ __name__: 'CBI.HiddenValue' })

  return baseclass.singleton({
    __name__: 'LuCI.form',
    Map,
    AbstractSection,
    TypedSection,
    TableSection,
    GridSection,
    NamedSection,
    AbstractValue,
    Value,
    DynamicList,
    ListValue,
    Flag: FlagValue,
    MultiValue,
    TextValue,
    HiddenValue,
    DummyValue: display('CBI.DummyValue'),
    ButtonValue: display('CBI.ButtonValue'),
  })
}

/** What the widget's getValue() returns. */
function widgetValue(w: Widget): Any {
  const o = w.option
  switch (w.kind) {
    case 'checkbox':
      return w.value === true
    case 'dynlist':
    case 'multi':
      return [...(w.value as string[])]
    case 'select': {
      // A <select>: the chosen key; a value that is not a choice leaves the
      // first option selected: the empty one when optional, else the first key.
      const keys: string[] = (o.keylist ?? []).filter((k: string) => k !== '')
      const v = w.value as string
      if (keys.includes(v)) return v
      if (o.optional || (o.keylist ?? []).includes('')) return ''
      return keys[0] ?? ''
    }
    case 'none':
      return null
    default:
      return w.value as string
  }
}

/** Validate one typed value as ui.js/validation.js do: true or the message shown. */
function checkValue(
  o: Any,
  sid: string,
  value: string,
  optional: boolean,
  datatype: string | undefined,
): true | string {
  if (value.length === 0) {
    if (!optional) return 'Expecting: non-empty value'
  } else if (datatype) {
    const r = checkDatatype(datatype, value)
    if (r !== true) return r
  }
  if (typeof o.validate === 'function') {
    const r = o.validate(sid, value)
    if (r !== true) return typeof r === 'string' ? r : `validate() returned ${String(r)}`
  }
  return true
}

/** Validate a widget's current content (see the header comment). */
function checkWidget(w: Widget): true | string {
  const o = w.option
  switch (w.kind) {
    case 'text':
      return checkValue(o, w.sid, w.value as string, !!(o.optional || o.rmempty), o.datatype)
    case 'select':
      return checkValue(o, w.sid, widgetValue(w), !!(o.optional || (o.keylist ?? []).includes('')), undefined)
    case 'dynlist': {
      for (const item of w.value as string[]) {
        const r = checkValue(o, w.sid, item, true, o.datatype)
        if (r !== true) return `${item}: ${r}`
      }
      return checkValue(o, w.sid, '', true, o.datatype)
    }
    case 'multi': {
      if (typeof o.validate !== 'function') return true
      for (const item of w.value as string[]) {
        const r = o.validate(w.sid, item)
        if (r !== true) return String(r)
      }
      return true
    }
    default:
      return true
  }
}

// ---- the session and the loader -------------------------------------------------------

interface Session {
  uciText: Record<string, string>
  rpcHandlers: Record<string, RpcHandler>
  grants: Grants | null
  declared: RpcDeclaration[]
  calls: RpcCall[]
  polls: PollEntry[]
  notifications: Array<{ title: unknown; text: string; classes: string[] }>
  modals: Array<{ title: unknown; text: string }>
  maps: Any[]
  saves: number
  uciLoads: Set<string>
}

export interface LoadOptions {
  /** uci package name → the text of /etc/config/<name>. */
  uci?: Record<string, string>
  /** "object.method" → handler; its return value is the reply, { ubusStatus: N } a failure. */
  rpc?: Record<string, RpcHandler>
  /** An rpcd ACL file (acl.d JSON) whose grants the session gets; without it, everything is allowed. */
  acl?: unknown
}

/** A schema row: what a view declared for one option. */
export interface OptionInfo {
  name: string
  widget: string
  datatype?: string
  validate: boolean
  rmempty: boolean
  optional: boolean
  default: unknown
  placeholder?: string
  depends: Array<Record<string, unknown>>
  choices: string[]
  modalonly?: boolean
  editable?: boolean
  password?: boolean
  tab?: string
}

export interface SectionInfo {
  kind: string
  type: string
  /** NamedSection: the section name. */
  name?: string
  title: string
  anonymous?: boolean
  addremove: boolean
  sortable?: boolean
  tabs: string[]
  options: OptionInfo[]
}

const CLASS_NAMES = [
  'MultiValue',
  'DynamicList',
  'ListValue',
  'Flag',
  'DummyValue',
  'ButtonValue',
  'TextValue',
  'HiddenValue',
  'Value',
]
const SECTION_NAMES = ['GridSection', 'TableSection', 'NamedSection', 'TypedSection']

/** A loaded view: the instance, what it rendered, and handles on the stand-in's records. */
export class LuciPage {
  constructor(
    private readonly session: Session,
    readonly view: Any,
    readonly nodes: unknown,
    readonly form: Any,
    readonly uci: Any,
  ) {}

  get declared(): RpcDeclaration[] {
    return this.session.declared
  }
  get calls(): RpcCall[] {
    return this.session.calls
  }
  get polls(): PollEntry[] {
    return this.session.polls
  }
  get notifications() {
    return this.session.notifications
  }
  get modals() {
    return this.session.modals
  }
  get saves(): number {
    return this.session.saves
  }
  /** The uci packages the page loaded (uci.load, form.Map). */
  get uciPackages(): string[] {
    return [...this.session.uciLoads].sort()
  }
  /** The form.Map objects the view rendered. */
  get maps(): Any[] {
    return this.session.maps
  }
  get map(): Any {
    const m = this.session.maps[0]
    if (!m) throw new Error('the view rendered no form.Map')
    return m
  }
  /** The page's text. */
  get text(): string {
    return textOf(this.nodes)
  }
  /** The save/apply/reset buttons LuCI's footer would show. */
  get footer() {
    const v = this.view
    return {
      save: typeof v.handleSave === 'function',
      saveApply: typeof v.handleSaveApply === 'function',
      reset: typeof v.handleReset === 'function',
    }
  }

  /** Run every poll.add() function once (a poll tick), and wait for them. */
  async tick(): Promise<void> {
    for (const e of [...this.session.polls]) await e.fn()
  }

  /** The form section for a uci section type (first match) or a NamedSection's name. */
  section(key: string): Any {
    for (const m of this.maps) {
      for (const s of m.children) if (s.section === key || (s.section === undefined && s.sectiontype === key)) return s
      for (const s of m.children) if (s.sectiontype === key) return s
    }
    throw new Error(`no form section ${JSON.stringify(key)}`)
  }

  option(sectionKey: string, name: string): Any {
    const o = this.section(sectionKey).children.find((c: Any) => c.option === name)
    if (!o) throw new Error(`no option ${JSON.stringify(name)} in section ${JSON.stringify(sectionKey)}`)
    return o
  }

  /** The uci section ids the form shows for a section. */
  sids(sectionKey: string): string[] {
    const s = this.section(sectionKey)
    return s.cfgsections().filter((sid: string) => s.map.data.get(s.config, sid) != null)
  }

  /** A plain description of everything the view declared. */
  schema(): SectionInfo[] {
    const form = this.form
    const kindOf = (obj: Any, names: string[]) => names.find((n) => obj.constructor === form[n]) ?? obj.__name__
    return this.maps.flatMap((m: Any) =>
      m.children.map((s: Any): SectionInfo => {
        const info: SectionInfo = {
          kind: kindOf(s, SECTION_NAMES),
          type: s.sectiontype,
          title: String(s.title),
          addremove: !!s.addremove,
          tabs: [...(s.tab_names ?? [])],
          options: s.children.map((o: Any): OptionInfo => {
            const oi: OptionInfo = {
              name: o.option,
              widget: kindOf(o, CLASS_NAMES),
              validate: typeof o.validate === 'function' && o.validate !== form.AbstractValue.prototype.validate,
              rmempty: !!o.rmempty,
              optional: !!o.optional,
              default: o.default,
              depends: o.deps.map((d: Any) => ({ ...d })),
              choices: [...(o.keylist ?? [])],
            }
            if (o.datatype !== undefined) oi.datatype = o.datatype
            if (o.placeholder !== undefined) oi.placeholder = o.placeholder
            if (o.modalonly !== undefined) oi.modalonly = o.modalonly
            if (o.editable !== undefined) oi.editable = o.editable
            if (o.password !== undefined) oi.password = o.password
            if (o.tab !== undefined) oi.tab = o.tab
            return oi
          }),
        }
        if (s.section !== undefined) info.name = s.section
        if (s.anonymous !== undefined) info.anonymous = !!s.anonymous
        if (s.sortable !== undefined) info.sortable = !!s.sortable
        return info
      }),
    )
  }

  private widget(sid: string, option: string): Widget {
    for (const m of this.maps) {
      for (const [cbid, w] of m.widgets as globalThis.Map<string, Widget>) {
        if (w.sid === sid && w.option.option === option && cbid.endsWith(`.${sid}.${option}`)) return w
      }
    }
    throw new Error(`no widget for ${sid}.${option} (not rendered)`)
  }

  /** Type into a widget: a string, a list for DynamicList/MultiValue, a boolean for a Flag. */
  set(sid: string, option: string, value: string | string[] | boolean): void {
    const w = this.widget(sid, option)
    if (w.kind === 'checkbox') w.value = value === true || value === w.option.enabled
    else if (w.kind === 'dynlist' || w.kind === 'multi') w.value = toArray(value).map(String)
    else w.value = Array.isArray(value) ? value.join(' ') : String(value)
    w.option.map.checkDepends()
  }

  /** A widget's value as the form reads it (formvalue). */
  get(sid: string, option: string): unknown {
    return this.widget(sid, option).option.formvalue(sid)
  }

  /** Whether a widget is shown (its depends hold). */
  active(sid: string, option: string): boolean {
    return this.widget(sid, option).option.isActive(sid)
  }

  /** The validation result of one widget: true or the message LuCI would show. */
  check(sid: string, option: string): true | string {
    const w = this.widget(sid, option)
    return checkWidget(w)
  }

  /** Every shown widget whose content is invalid, as the form stands now. */
  errors(): Array<{ sid: string; option: string; message: string }> {
    const out: Array<{ sid: string; option: string; message: string }> = []
    for (const m of this.maps) {
      m.checkDepends()
      for (const w of (m.widgets as globalThis.Map<string, Widget>).values()) {
        if (w.hidden) continue
        const r = checkWidget(w)
        if (r !== true) out.push({ sid: w.sid, option: w.option.option, message: r })
      }
    }
    return out
  }

  /** Press "Save": form.Map.save() of every map (rejects with LuCI's message on a bad field). */
  async save(): Promise<void> {
    for (const m of this.maps) await m.save(null, true)
  }

  /** Press "Add" under a section (TypedSection.handleAdd): the new section's id. */
  async add(sectionKey: string, name?: string): Promise<string> {
    return this.section(sectionKey).handleAdd(null, name)
  }

  /** Press "Delete" on a section row. */
  async remove(sectionKey: string, sid: string): Promise<void> {
    await this.section(sectionKey).handleRemove(sid)
  }
}

/** The modules a view may require: luci.js's preloaded classes and this file's stand-ins. */
function makeModules(session: Session) {
  const baseclass = makeBaseclass()
  const dom = makeDom(baseclass)
  const uci = makeUci(session)
  const View = baseclass.extend({
    __name__: 'LuCI.view',
    __init__(this: Any) {
      // luci.js: load(), then render() with its result; the nodes go into #view.
      this.__rendered = Promise.resolve(this.load()).then((data: unknown) => this.render(data))
    },
    load() {},
    render() {},
    handleSave(this: Any) {
      return Promise.all(session.maps.map((m) => m.save()))
    },
    handleSaveApply(this: Any) {
      return this.handleSave()
    },
    handleReset() {
      return Promise.all(session.maps.map((m) => m.reset()))
    },
    addFooter() {
      return new FakeNode(11)
    },
  })
  const modules: Record<string, Any> = {
    baseclass,
    dom,
    poll: makePoll(session, baseclass),
    request: baseclass.singleton({ __name__: 'LuCI.request' }),
    session: baseclass.singleton({ __name__: 'LuCI.session', getID: () => 'stand-in', getToken: () => 'stand-in' }),
    view: View,
    uci,
    rpc: makeRpc(session, baseclass),
    ui: makeUi(session, baseclass),
  }
  modules.form = makeForm(session, baseclass, uci)
  return { modules, baseclass, dom }
}

/**
 * luci.js's scan of a class file's leading directives: string literals are
 * read one after another (comments skipped, backslash escapes honoured);
 * 'use strict' is skipped, 'require NAME [as ALIAS]' is collected, and the
 * first other string ends the scan.
 */
export function scanRequires(source: string): Array<{ name: string; as: string }> {
  const requireRe = /^require[ \t]+(\S+)(?:[ \t]+as[ \t]+([a-zA-Z_]\S*))?$/
  const strictRe = /^use[ \t]+strict$/
  const out: Array<{ name: string; as: string }> = []
  let off = -1
  let prev = -1
  let quote = -1
  let comment = -1
  let esc = false
  for (let i = 0; i < source.length; i++) {
    const chr = source.charCodeAt(i)
    if (esc) {
      esc = false
    } else if (comment !== -1) {
      if ((comment === 47 && chr === 10) || (comment === 42 && prev === 42 && chr === 47)) comment = -1
    } else if ((chr === 42 || chr === 47) && prev === 47) {
      comment = chr
    } else if (chr === 92) {
      esc = true
    } else if (chr === quote) {
      const s = source.substring(off, i)
      const m = requireRe.exec(s)
      if (m) out.push({ name: m[1]!, as: m[2] || m[1]!.replace(/[^a-zA-Z0-9_]/g, '_') })
      else if (!strictRe.test(s)) break
      off = -1
      quote = -1
    } else if (quote === -1 && (chr === 34 || chr === 39)) {
      off = i + 1
      quote = chr
    }
    prev = chr
  }
  return out
}

/** A page's runtime: the session it records into, the module classes and L.require. */
function makeRuntime(opts: LoadOptions) {
  const session: Session = {
    uciText: { ...(opts.uci ?? {}) },
    rpcHandlers: { ...(opts.rpc ?? {}) },
    grants: opts.acl === undefined ? null : aclGrants(opts.acl),
    declared: [],
    calls: [],
    polls: [],
    notifications: [],
    modals: [],
    maps: [],
    saves: 0,
    uciLoads: new Set(),
  }
  const { modules, baseclass, dom } = makeModules(session)
  const classes: Record<string, Any> = { ...modules }
  const E = (...args: unknown[]) => dom.create(...args)
  const window: Any = { L: null, location: { pathname: '/cgi-bin/luci' } }
  const document: Any = {
    getElementById: () => null,
    querySelector: () => null,
    querySelectorAll: () => [],
    createElement: (tag: string) => new FakeNode(1, tag),
    createElementNS: (_ns: string, tag: string) => new FakeNode(1, tag),
    createTextNode: (text: string) => new FakeNode(3, '', text),
    createDocumentFragment: () => new FakeNode(11),
    addEventListener() {},
  }
  // The browser window the views run in: LuCI's globals E, _ and N_, String.prototype.format.
  const context = vm.createContext({
    E,
    _: (s: string) => s,
    N_: (_n: number, s: string) => s,
    console,
    window,
    document,
  })
  vm.runInContext(FORMAT_SOURCE, context)

  const L: Any = {
    env: { pollinterval: 5, base_url: '/luci-static/resources', sessionid: 'stand-in' },
    loaded: true,
    Class: baseclass,
    dom,
    Poll: modules.poll,
    ui: modules.ui,
    bind: (fn: Any, self: unknown, ...args: unknown[]) => fn.bind(self, ...args),
    toArray,
    isObject: (v: unknown) => v != null && typeof v === 'object',
    resolveDefault: (p: Any, def: unknown) => Promise.resolve(p).catch(() => def),
    raise(type: string, msg: string) {
      const e = new Error(msg)
      e.name = type
      throw e
    },
    error(type: string, msg: string) {
      return L.raise(type, msg)
    },
    naturalCompare: (a: string, b: string) => a.localeCompare(b, undefined, { numeric: true }),
    hasViewPermission: () => true,
    require: (name: string) => requireClass(name, []),
  }
  window.L = L

  async function requireClass(name: string, from: string[]): Promise<Any> {
    if (classes[name] != null) {
      if (from.includes(name))
        throw new Error(
          `DependencyError: Circular dependency: class "${name}" depends on "${from.join('" which depends on "')}"`,
        )
      return classes[name]
    }
    const file = resolve(resourcesDir, `${name.replace(/\./g, '/')}.js`)
    if (!existsSync(file))
      throw new Error(
        `NetworkError: HTTP error 404 while loading class file "${file}" (not a file of luci-app-ugate, nor a module of the stand-in)`,
      )
    const chain = [name, ...from]
    const source = readFileSync(file, 'utf8')
    const reqs = scanRequires(source)
    const instances = await Promise.all(reqs.map((r) => requireClass(r.name, chain)))
    const args = reqs.map((r) => `, ${r.as}`).join('')
    const wrapped = `(function(window, document, L${args}) { ${source} })\n\n//# sourceURL=${file}\n`
    let factory: Any
    try {
      factory = vm.runInContext(wrapped, context, { filename: file })
    } catch (e) {
      throw new Error(`SyntaxError: ${e instanceof Error ? e.message : String(e)}\n  in ${file}`)
    }
    const cls = factory.apply(factory, [window, document, L, ...instances])
    if (!baseclass.isSubclass(cls)) throw new TypeError(`"${name}" factory yields invalid constructor`)
    const instance = new cls()
    classes[name] = instance
    return instance
  }

  return { session, modules, requireClass }
}

/**
 * Load a view the way LuCI's dispatcher does for a menu action
 * {"type": "view", "path": PATH}: ui.instantiateView → L.require('view.' +
 * PATH with "/" → "."), then wait for its load() and render().
 */
export async function loadView(path: string, opts: LoadOptions = {}): Promise<LuciPage> {
  const { session, modules, requireClass } = makeRuntime(opts)
  const view = await requireClass(`view.${path.replace(/\//g, '.')}`, [])
  if (!(view instanceof modules.view)) throw new TypeError(`Loaded class view.${path} is not a descendant of View`)
  const nodes = await view.__rendered
  return new LuciPage(session, view, nodes, modules.form, modules.uci)
}

/**
 * Load a class module of luci-app-ugate (e.g. "ugate" for resources/ugate.js)
 * as L.require does for a view's 'require ugate as ug': the instance the
 * view gets.
 */
export async function loadModule(name: string, opts: LoadOptions = {}): Promise<Any> {
  return makeRuntime(opts).requireClass(name, [])
}
