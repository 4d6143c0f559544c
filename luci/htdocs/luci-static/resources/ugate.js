'use strict';
'require baseclass';

/*
 * ugate's value checks for the LuCI pages ('require ugate as ug').
 *
 * Each check repeats the daemon's own check of the same value (ugate
 * sources: src/core/uci-config.ts reads the uci file into the JSON config,
 * src/core/config.ts, rules, nft.ts and address.ts check it), so a form that
 * LuCI saves is a config that `ugate check` accepts. Values are checked the
 * way the uci reader turns them into the JSON config: numbers are
 * "-?digits[.digits]", list options item by item.
 *
 * The checks are pure: they take the value (and, for cross-field checks,
 * the other values they compare with) and return true or the error message
 * LuCI shows. Reading the other fields is the view's job. They never use
 * `this`, so a view may pass them around as plain functions.
 */

const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/; /* listener and upstream names */
const PRINTABLE_RE = /^[\x21-\x7e]{1,64}$/; /* rule names, a rule's listener names */
const HOST_LABEL_RE = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;
const DOMAIN_LABEL_RE = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const KEYWORD_RE = /^[a-z0-9._-]{1,253}$/;
const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const MAC_RE = /^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$/;
const NUMBER_RE = /^-?[0-9]+(?:\.[0-9]+)?$/; /* what the uci reader takes as a number */
const CONTROL_RE = /[\x00-\x1f]/;
const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/; /* SPIFFE trust domains, SPIFFE id path segments (identity.ts) */
const SEGMENT_RE = /^[A-Za-z0-9._-]+$/;
const NODE_ID_RE = /^[A-Z2-7]{51}[AQ]$/; /* base32 of a SHA-256: one bit left in the last character */

/* Seconds the daemon accepts for each duration (config.ts SECONDS). */
const SECONDS = {
	handshake_timeout: [0.001, 3600],
	idle_timeout: [0, 2147483],
	connect_timeout: [0.001, 3600],
	shutdown_grace: [0, 3600],
	sniff_timeout: [0.001, 60],
	udp_idle_timeout: [0.001, 86400],
	udp_dns_idle_timeout: [0.001, 86400],
	timeout: [0.001, 60] /* a dns listener's (dnsTimeout) */,
	retry: [0.01, 3600] /* a reverse tunnel's backoff: retry and retry_max */,
	retry_max: [0.01, 3600],
	/* keep-alive of an hbone listener or upstream, a reverse tunnel */
	ping_interval: [0.1, 3600],
	ping_timeout: [0.1, 3600]
};

/* The protocols a rule's "proto" matches (rules: SniffProto). */
const PROTOS = ['tls', 'http', 'h2', 'unknown'];

const ANY4 = '0.0.0.0';
const ANY6 = '0:0:0:0:0:0:0:0';

/* ---- addresses (the daemon's ip and address parsers) ---------------------------- */

/* Dotted quad without leading zeros: the 4 octets, or null. */
function parseIPv4(s) {
	const parts = String(s).split('.');

	if (parts.length !== 4) return null;

	const octets = [];

	for (const p of parts) {
		if (!/^(?:0|[1-9][0-9]{0,2})$/.test(p) || +p > 255) return null;

		octets.push(+p);
	}

	return octets;
}

/* IPv6 text (with "::" and a trailing dotted quad, no zone id): the 8 groups, or null. */
function parseIPv6(s) {
	s = String(s);

	const groups = [];
	let gap = -1,
		i = 0;

	if (s.indexOf(':') < 0 || s.length > 64) return null;

	if (s.substring(0, 2) === '::') {
		gap = 0;
		i = 2;
	}

	while (i < s.length) {
		const hex = /^[0-9A-Fa-f]{0,5}/.exec(s.substring(i))[0];

		if (s.charAt(i + hex.length) === '.') {
			/* a dotted quad takes the last two groups */
			const v4 = groups.length <= 6 ? parseIPv4(s.substring(i)) : null;

			if (!v4) return null;

			groups.push(v4[0] * 256 + v4[1], v4[2] * 256 + v4[3]);
			i = s.length;
			break;
		}

		if (hex.length === 0 || hex.length > 4 || groups.length >= 8) return null;

		groups.push(parseInt(hex, 16));
		i += hex.length;

		if (i === s.length) break;

		if (s.charAt(i) !== ':') return null;

		i++;

		if (s.charAt(i) === ':') {
			if (gap >= 0) return null;

			gap = groups.length;
			i++;
		} else if (i === s.length) {
			return null; /* a single trailing ':' */
		}
	}

	if (gap < 0) return groups.length === 8 ? groups : null;

	if (groups.length > 7) return null;

	const tail = groups.splice(gap);

	while (groups.length + tail.length < 8) groups.push(0);

	return groups.concat(tail);
}

/* 4, 6, or 0 when s is not an IP address. */
function ipFamily(s) {
	if (String(s).indexOf(':') < 0) return parseIPv4(s) ? 4 : 0;

	return parseIPv6(s) ? 6 : 0;
}

/* "ADDR" or "ADDR/LEN": { family, groups (IPv6), len }, or null. */
function parseCidr(text) {
	text = String(text);

	const slash = text.indexOf('/'),
		addr = slash < 0 ? text : text.substring(0, slash),
		family = ipFamily(addr),
		max = family === 4 ? 32 : 128;

	if (family === 0) return null;

	let len = max;

	if (slash >= 0) {
		const lenText = text.substring(slash + 1);

		if (!/^(?:0|[1-9][0-9]{0,2})$/.test(lenText) || +lenText > max) return null;

		len = +lenText;
	}

	return { family: family, groups: family === 6 ? parseIPv6(addr) : null, len: len };
}

/* An IPv4-mapped IPv6 prefix (inside ::ffff:0:0/96): the daemon routes it as IPv4. */
function isMappedPrefix(c) {
	return (
		c.family === 6 &&
		c.len >= 96 &&
		c.groups.slice(0, 5).every(function (g) {
			return g === 0;
		}) &&
		c.groups[5] === 0xffff
	);
}

/* One spelling per address, for comparing listen addresses. */
function ipKey(addr) {
	const v4 = parseIPv4(addr);

	if (v4) return v4.join('.');

	const v6 = parseIPv6(addr);

	return v6
		? v6
				.map(function (g) {
					return g.toString(16);
				})
				.join(':')
		: String(addr);
}

/* RFC 1123 labels as address.ts hostNameProblem reads them (also '_'). */
function isLabels(s) {
	return (
		s.length > 0 &&
		s.length <= 253 &&
		s.split('.').every(function (l) {
			return HOST_LABEL_RE.test(l);
		})
	);
}

/* A host name as address.ts reads it (isLabels; last label not all digits). */
function isHostName(s) {
	return isLabels(s) && !/(^|\.)[0-9]+$/.test(s);
}

/* A rule's domain (rules.ts domainName): the lower-case name, or an error string in .error. */
function checkDomain(v, suffix) {
	let s = String(v).toLowerCase();

	if (s.charAt(s.length - 1) === '.') s = s.substring(0, s.length - 1);

	if (suffix && (s.charAt(0) === '.' || s.substring(0, 2) === '*.'))
		return { error: _('write it without the leading "." or "*.": a suffix already matches the names below it') };

	if (s.length === 0 || s.length > 253) return { error: _('a domain name has 1-253 characters') };

	if (/[^\x00-\x7f]/.test(s)) return { error: _('write non-ASCII names in punycode ("xn--...")') };

	if (
		!s.split('.').every(function (l) {
			return DOMAIN_LABEL_RE.test(l);
		})
	)
		return { error: _('labels are 1-63 of a-z 0-9 _ -, without "-" at either end') };

	return { name: s };
}

/* A forward action's host: an IP address, or a domain name whose last label is not all digits. */
function isForwardHost(h) {
	if (ipFamily(h) !== 0) return true;

	const d = checkDomain(h, false);

	return !d.error && !/(^|\.)[0-9]+$/.test(d.name);
}

/* ---- value checks: true or an error message ---------------------------------------- */

/* A uci number that is an integer from min to max. */
function checkInteger(value, min, max) {
	const n = +value;

	if (!NUMBER_RE.test(value) || !Number.isInteger(n) || n < min || n > max)
		return _('Expecting: %s').format(_('a whole number from %d to %d').format(min, max));

	return true;
}

/* A uci number of seconds within the daemon's range for the duration `option` (a key of SECONDS). */
function checkSeconds(value, option) {
	const range = SECONDS[option],
		n = +value;

	if (!NUMBER_RE.test(value) || !isFinite(n) || n < range[0] || n > range[1])
		return _('Expecting: %s').format(_('a number of seconds from %s to %s').format(range[0], range[1]));

	return true;
}

/* A port as address.ts parses it inside HOST:PORT ("0" allowed for listening). */
function checkEndpointPort(value, min) {
	if (!/^[0-9]{1,5}$/.test(value) || +value < min || +value > 65535)
		return _('Expecting: %s').format(_('a port from %d to 65535').format(min));

	return true;
}

/*
 * HOST:PORT as address.ts parseEndpoint reads it, IPv6 in brackets: a
 * target (port 1-65535, IP or host name) or, `listen`, a listen address
 * (port 0-65535, IP only). `ipOnly`: the host must be an IP address.
 */
function checkEndpoint(text, listen, ipOnly) {
	let host, port;

	if (text.charAt(0) === '[') {
		const close = text.indexOf(']');

		if (close < 0) return _('missing "]" after the IPv6 address');

		if (text.charAt(close + 1) !== ':') return _('missing ":PORT" after "]"');

		host = text.substring(1, close);
		port = text.substring(close + 2);

		if (!parseIPv6(host)) return _('"%s" is not an IPv6 address').format(host);
	} else {
		const colon = text.lastIndexOf(':');

		if (colon < 0) return _('Expecting: %s').format(listen ? 'IP:PORT' : 'HOST:PORT');

		host = text.substring(0, colon);
		port = text.substring(colon + 1);

		if (host.indexOf(':') >= 0) return _('an IPv6 address needs brackets, e.g. "[2001:db8::1]:443"');

		if (host === '') return _('missing HOST before ":"');
	}

	const min = listen ? 0 : 1;

	if (checkEndpointPort(port, min) !== true) return _('port "%s" is not a number from %d to 65535').format(port, min);

	if (!parseIPv4(host) && !parseIPv6(host) && !isHostName(host))
		return _('"%s" is not an IP address or host name').format(host);

	if ((listen || ipOnly) && !ipFamily(host)) return _('"%s" is not an IP address').format(host);

	return true;
}

/* A listener's target (endpoint "target"). */
function checkTarget(text) {
	return checkEndpoint(text, false, false);
}

/* A rule's forward target (rules.ts splitHostPort): HOST:PORT, IPv6 in brackets, port without leading zeros. */
function checkForward(text) {
	let host, port;

	if (text.charAt(0) === '[') {
		const close = text.indexOf(']');

		if (close < 0 || text.charAt(close + 1) !== ':') return _('an IPv6 host is written "[ADDR]:PORT"');

		host = text.substring(1, close);
		port = text.substring(close + 2);

		if (ipFamily(host) !== 6) return _('"%s" is not an IPv6 address').format(host);
	} else {
		const colon = text.lastIndexOf(':');

		if (colon <= 0) return _('Expecting: %s').format('HOST:PORT');

		host = text.substring(0, colon);
		port = text.substring(colon + 1);

		if (host.indexOf(':') >= 0) return _('an IPv6 address needs brackets, e.g. "[2001:db8::1]:443"');
	}

	if (!/^[1-9][0-9]{0,4}$/.test(port) || +port > 65535)
		return _('port "%s" is not a number from 1 to 65535').format(port);

	if (!isForwardHost(host)) return _('"%s" is not an IP address or host name').format(host);

	return true;
}

/* A SOCKS5 / HTTP Basic credential: 1-255 characters, no control characters. */
function checkCredential(v) {
	if (v.length === 0 || v.length > 255 || CONTROL_RE.test(v)) return false;

	return true;
}

/* A listener's "user:password" entry. */
function checkUser(v) {
	const colon = v.indexOf(':');

	if (colon <= 0 || colon === v.length - 1) return _('Expecting: %s').format('user:password');

	if (!checkCredential(v.substring(0, colon)) || !checkCredential(v.substring(colon + 1)))
		return _('user and password are 1-255 characters each, without control characters');

	return true;
}

function checkCidr(v) {
	return parseCidr(v) ? true : _('"%s" is not an IPv4/IPv6 address or CIDR').format(v);
}

function checkPortRange(v) {
	const m = /^([1-9][0-9]{0,4})(?:-([1-9][0-9]{0,4}))?$/.exec(v),
		lo = m ? +m[1] : 0,
		hi = m ? +(m[2] || m[1]) : 0;

	if (!m || lo > 65535 || hi > 65535 || lo > hi)
		return _('Expecting: %s').format(_('a port (1-65535) or a range like 8000-8080'));

	return true;
}

/* the daemon's boolean spellings (src/core/uci-config.ts bool) */
const TRUE_WORDS = ['1', 'true', 'yes', 'on', 'enabled'];
const FALSE_WORDS = ['0', 'false', 'no', 'off', 'disabled'];

function isTrue(v) {
	return TRUE_WORDS.indexOf(String(v)) >= 0;
}

/* A uci boolean as a form.Flag shows it: '1' or '0' for any spelling the daemon reads, so "yes" is
 * ticked and saved back as 1; null (the option's default) and unknown words as they are (unticked). */
function flagValue(v) {
	if (v == null) return v;
	if (TRUE_WORDS.indexOf(String(v)) >= 0) return '1';
	if (FALSE_WORDS.indexOf(String(v)) >= 0) return '0';
	return v;
}

/* ---- the checks of single fields ------------------------------------------------------- */

/* A listener's or upstream's name, unique among `others` (the names of the other sections of `type`). */
function checkName(value, others, type) {
	if (!NAME_RE.test(value)) return _('Expecting: %s').format(_('1-64 letters, digits, "_" or "-"'));

	return others.indexOf(value) >= 0 ? _('"%s" is already the name of another %s').format(value, type) : true;
}

/* A rule's name. */
function checkRuleName(v) {
	return PRINTABLE_RE.test(v) ? true : _('Expecting: %s').format(_('1-64 printable characters without spaces'));
}

/* A listener name in a rule's "listener" list. */
function checkListenerName(v) {
	return PRINTABLE_RE.test(v) ? true : _('Expecting: %s').format(_('a listener name'));
}

/* The firewall mark; `captureSelf`: capture of the router's own traffic is on. */
function checkMark(value, captureSelf) {
	if (value != null && value !== '') {
		const r = checkInteger(value, 0, 4294967295);

		if (r !== true) return r;
	}

	/* config.ts/nft.ts: capture of the router's own traffic skips ugate's connections by this mark */
	if ((value == null || value === '' || +value === 0) && captureSelf)
		return _("Capturing the router's own traffic needs a non-zero mark, or ugate would capture its own connections");

	return true;
}

function checkSocketPath(v) {
	if (v.charAt(0) !== '/' || v.length > 107 || CONTROL_RE.test(v))
		return _('Expecting: %s').format(_('an absolute path of at most 107 characters'));

	return true;
}

/* A listener's address: an IP literal. */
function checkListenAddress(v) {
	return ipFamily(v) ? true : _('Expecting: %s').format(_('an IPv4 or IPv6 address, without brackets or prefix'));
}

/*
 * address.ts listenAddressesClash, on the uci values { address, port }: the
 * same port on the same address, or on a wildcard of the same family; "::"
 * is dual-stack and holds the port for IPv4 too.
 */
function listenClash(a, b) {
	const fa = ipFamily(a.address),
		fb = ipFamily(b.address),
		ka = ipKey(a.address),
		kb = ipKey(b.address);

	if (!fa || !fb || !/^[0-9]{1,5}$/.test(a.port) || !/^[0-9]{1,5}$/.test(b.port) || +a.port !== +b.port) return false;

	if (fa !== fb) return ka === ANY6 || kb === ANY6;

	return ka === kb || ka === ANY4 || ka === ANY6 || kb === ANY4 || kb === ANY6;
}

/* A listener's port on `address`; `others`: the other listeners as { name, address, port }. */
function checkListenPort(value, address, others) {
	const r = checkEndpointPort(value, 0);

	if (r !== true || +value === 0) return r;

	const clash = others.filter(function (o) {
		return listenClash({ address: address, port: value }, { address: String(o.address), port: String(o.port) });
	});

	return clash.length ? _('%s port %s is already used by listener "%s"').format(address, value, clash[0].name) : true;
}

/*
 * One item `value` of a listener's users list `list` (all of its items), or
 * the whole list when `value` is empty: config.ts rejects a user listed twice.
 */
function checkUsers(list, value) {
	const users = list.map(function (u) {
		return String(u).split(':')[0];
	});

	if (value == null || value === '') {
		for (let i = 0; i < users.length; i++)
			if (users.indexOf(users[i]) !== i) return _('User "%s" is listed twice').format(users[i]);

		return true;
	}

	const r = checkUser(value);

	if (r !== true) return r;

	const user = value.split(':')[0],
		count = users.filter(function (u) {
			return u === user;
		}).length;

	if (count > 1 || (count === 1 && list.indexOf(value) < 0)) return _('User "%s" is listed twice').format(user);

	return true;
}

function checkDomainName(v) {
	return checkDomain(v, false).error || true;
}

function checkDomainSuffix(v) {
	return checkDomain(v, true).error || true;
}

function checkKeyword(v) {
	return KEYWORD_RE.test(v.toLowerCase()) ? true : _('Expecting: %s').format(_('1-253 of a-z 0-9 . _ -'));
}

function checkProto(v) {
	return PROTOS.indexOf(v) >= 0 ? true : _('Expecting: %s').format(PROTOS.join(', '));
}

/* A rule's upstream, one of `names` (the configured upstreams). */
function checkUpstreamRef(v, names) {
	return names.indexOf(v) >= 0
		? true
		: _('Upstream "%s" is not configured (known: %s)').format(v, names.join(', ') || _('none'));
}

/* An upstream's server: an IP address or host name. */
function checkServer(v) {
	return ipFamily(v) || isHostName(v) ? true : _('"%s" is not an IP address or host name').format(v);
}

/* config.ts: an upstream's user name and password come together, 1-255 characters each. */
function checkCredentialPair(mine, theirs) {
	if (mine === '' && theirs === '') return true;

	if (mine === '') return _('Set both user name and password, or neither');

	return checkCredential(mine) ? true : _('Expecting: %s').format(_('1-255 characters without control characters'));
}

/*
 * The capture listener `name` (capture enabled): `listener` is that
 * listener as { type, address }, or null when no listener has that name;
 * `ipv6`: IPv6 capture is on.
 */
function checkCaptureListener(name, listener, ipv6, type) {
	type = type || 'redirect';

	if (name == null || name === '') return _('Choose the %s listener that captured traffic goes to').format(type);

	if (!listener) return _('"%s" is not the name of a listener').format(name);

	/* config.ts checkTproxy: captured TCP may go to a tproxy listener that takes tcp (TPROXY instead of REDIRECT) */
	const tcpTproxy = type === 'redirect' && listener.type === 'tproxy';

	if (listener.type !== type && !tcpTproxy) return _('"%s" is not a %s listener').format(name, type);

	if (listener.type === 'tproxy') {
		const want = tcpTproxy ? 'tcp' : 'udp',
			networks = listener.networks && listener.networks.length > 0 ? listener.networks : ['udp'];

		if (networks.indexOf(want) < 0)
			return _('"%s" takes %s, not %s: add "%s" to its networks').format(name, networks.join(', '), want, want);
	}

	/*
	 * config.ts: REDIRECT sends connections to the incoming interface's
	 * address, so only a wildcard listener gets them; IPv6 capture needs
	 * "::", which takes both families.
	 */
	const addr = String(listener.address || ''),
		family = ipFamily(addr),
		wildcard4 = family === 4 && ipKey(addr) === ANY4,
		wildcard6 = family === 6 && ipKey(addr) === ANY6;

	if (!wildcard4 && !wildcard6)
		return _('"%s" listens on %s: a listener for capture must listen on :: (both families) or 0.0.0.0').format(
			name,
			addr
		);

	if (!wildcard6 && ipv6)
		return _('"%s" listens on %s (IPv4 only): for "Capture IPv6" it must listen on ::').format(name, addr);

	return true;
}

/* An item of a capture address list; `noIPv6`: IPv6 entries are refused (include_src without IPv6 capture). */
function checkCaptureCidr(v, noIPv6) {
	const c = parseCidr(v);

	if (!c) return checkCidr(v);

	if (isMappedPrefix(c)) return _('write IPv4-mapped addresses as IPv4');

	/* nft.ts: an IPv6 include list needs IPv6 capture */
	if (noIPv6 && c.family === 6) return _('IPv6 sources need "Capture IPv6"');

	return true;
}

function checkIfname(v) {
	return IFNAME_RE.test(v) ? true : _('Expecting: %s').format(_('an interface name (1-15 of A-Z a-z 0-9 _ . -)'));
}

/* A captured port (nft.ts). */
function checkCapturePort(v) {
	return /^[0-9]{1,10}$/.test(v) && +v >= 1 && +v <= 65535
		? true
		: _('Expecting: %s').format(_('a port from 1 to 65535'));
}

/* config.ts dnsServer: "IP", "[IPv6]", "IP:PORT", "[IPv6]:PORT", or DNS over TLS "tls://[NAME@]" before one of them. */
function checkDnsServer(v) {
	const tls = v.indexOf('tls://') === 0;
	let address = tls ? v.substring(6) : v;
	const at = address.indexOf('@');

	if (tls && at >= 0) {
		const name = address.substring(0, at).replace(/\.$/, '');

		if (!ipFamily(name) && !isLabels(name)) return _('"%s" is not a host name').format(name);

		address = address.substring(at + 1);
	}

	const bracketed = /^\[.*\]$/.test(address);

	if (bracketed ? ipFamily(address.slice(1, -1)) === 6 : ipFamily(address)) return true;

	return checkEndpoint(address, false, true);
}

/* config.ts filePath: an absolute path (a dns listener's ca_bundle). */
function checkFilePath(v) {
	if (v.charAt(0) !== '/' || v.length > 4095 || CONTROL_RE.test(v))
		return _('Expecting: %s').format(_('an absolute file path'));

	return true;
}

/* An IP address (config.ts ipList: a dns listener's reject_address). */
function checkIp(v) {
	return ipFamily(v) ? true : _('"%s" is not an IP address').format(v);
}

/* A dns listener's static "ADDRESS NAME..." line (uci-config.ts hostLines, config.ts staticHosts). */
function checkHostLine(v) {
	const words = v.trim().split(/\s+/);

	if (words[0] === '' || words.length < 2) return _('Expecting: %s').format('ADDRESS NAME...');

	if (!ipFamily(words[0])) return _('"%s" is not an IP address').format(words[0]);

	for (let i = 1; i < words.length; i++) {
		const n = words[i].replace(/\.$/, '');

		if (!isLabels(n)) return _('"%s" is not a host name').format(words[i]);
	}

	return true;
}

/* A rule's network (rules compile.ts networkName). */
function checkNetwork(v) {
	return v === 'tcp' || v === 'udp' ? true : _('Expecting: %s').format('tcp, udp');
}

/* A tproxy listener's network (config.ts networks): udp (its default), tcp or both. */
function checkTproxyNetwork(v) {
	return v === 'udp' || v === 'tcp' ? true : _('Expecting: %s').format('udp, tcp');
}

/* capture.tproxy_mark: 1-4294967295, not ugate's own mark (`mark`) when TPROXY is in use (`udp`: UDP capture, or TCP to a tproxy listener). */
function checkTproxyMark(value, mark, udp) {
	const r = checkInteger(value, 1, 4294967295);

	if (r !== true) return r;

	if (udp && +value === +(mark == null || mark === '' ? 0 : mark))
		return _("%s is also the firewall mark: TPROXYed packets and ugate's own must carry different marks").format(value);

	return true;
}

/* The admin HTTP address; `secret`: admin_secret. Without a secret only loopback may listen (config.ts adminConfig). */
function checkAdminListen(value, secret) {
	const r = checkEndpoint(value, true, true);

	if (r !== true) return r;

	const host =
		value.charAt(0) === '[' ? value.substring(1, value.indexOf(']')) : value.substring(0, value.lastIndexOf(':'));
	/* config.ts isLoopback: 127/8 (also IPv4-mapped, which the daemon reads as IPv4) or ::1 */
	const c = parseCidr(host),
		loopback =
			c.family === 4
				? parseIPv4(host)[0] === 127
				: isMappedPrefix(c)
					? c.groups[6] >> 8 === 127
					: ipKey(host) === '0:0:0:0:0:0:0:1';

	if (!loopback && (secret == null || secret === ''))
		return _('"%s" is not a loopback address: set the admin secret, or listen on 127.0.0.1 or [::1]').format(value);

	return true;
}

/* The admin HTTP secret: 1-255 characters without control characters. */
function checkSecret(v) {
	return checkCredential(v) ? true : _('Expecting: %s').format(_('1-255 characters without control characters'));
}

function checkMac(v) {
	return MAC_RE.test(v) ? true : _('Expecting: %s').format('aa:bb:cc:dd:ee:ff');
}

/* ---- the mesh (identity.ts) ------------------------------------------------------------ */

/* Why a trust domain is not one (identity.ts trustDomainProblem), or null. */
function trustDomainProblem(td) {
	if (td === '') return _('is empty');

	if (!TRUST_DOMAIN_RE.test(td)) return _('may only hold a-z, 0-9, ".", "-" and "_"');

	return td.length > 255 ? _('is longer than 255 characters') : null;
}

/* Why v is not an Istio workload SPIFFE id spiffe://TD/ns/NS/sa/SA (identity.ts parseSpiffeId), or null. */
function spiffeIdProblem(v) {
	if (v.length > 2048) return _('is longer than 2048 characters');

	if (v.substring(0, 9) !== 'spiffe://') return _('does not start with "spiffe://"');

	const parts = v.substring(9).split('/'),
		td = parts.shift(),
		tdProblem = trustDomainProblem(td);

	if (tdProblem) return _('trust domain "%s" %s').format(td, tdProblem);

	if (parts.length !== 4 || parts[0] !== 'ns' || parts[2] !== 'sa')
		return _('has no /ns/NAMESPACE/sa/SERVICE-ACCOUNT path');

	for (const seg of [parts[1], parts[3]]) {
		if (seg === '') return _('path segment "%s" is empty').format(seg);

		if (seg === '.' || seg === '..') return _('path segment "%s" may not be "." or ".."').format(seg);

		if (!SEGMENT_RE.test(seg)) return _('path segment "%s" may only hold A-Z, a-z, 0-9, ".", "-" and "_"').format(seg);
	}

	return null;
}

function checkSpiffeId(v) {
	const p = spiffeIdProblem(v);

	return p ? _('"%s" is not a SPIFFE id: %s').format(v, p) : true;
}

function checkTrustDomain(v) {
	const p = trustDomainProblem(v);

	return p ? _('"%s" %s').format(v, p) : true;
}

/* A node id (identity.ts parseNodeId): 52 base32 characters, the last A or Q; any case. */
function checkNodeId(v) {
	const id = v.toUpperCase();

	if (id.length !== 52) return _('"%s" is not a node id (52 base32 characters, not %d)').format(v, id.length);

	return NODE_ID_RE.test(id) ? true : _('"%s" is not a node id (base32: A-Z and 2-7, the last one A or Q)').format(v);
}

/*
 * An hbone upstream's node (config.ts hboneUpstream, identity.ts
 * nodeIdProblem): 52 characters A-Z and 2-7, upper case — stricter than a
 * rule's node id about case, looser about the last character.
 */
function checkUpstreamNode(v) {
	return /^[A-Z2-7]{52}$/.test(v) ? true : _('"%s" is not a node id (52 characters A-Z, 2-7)').format(v);
}

/* An hbone upstream's identity, inside its trust domain `td` when that is set (config.ts hboneUpstream). */
function checkUpstreamIdentity(v, td) {
	const r = checkSpiffeId(v);

	if (r !== true) return r;

	return td && trustDomainProblem(td) === null && v.substring(0, 10 + td.length) !== 'spiffe://' + td + '/'
		? _('"%s" is not in trust domain "%s"').format(v, td)
		: true;
}

/* An upstream's server of `type`: an hbone peer is an IP address (config.ts hboneUpstream). */
function checkUpstreamServer(v, type) {
	if (type === 'hbone' && !ipFamily(v))
		return _('"%s" is not an IP address: an hbone peer is given as IP or IP:PORT').format(v);

	return checkServer(v);
}

/* The mesh section's node_suffix (config.ts mesh: address.ts hostNameProblem), any case. */
function checkNodeSuffix(v) {
	return isLabels(v)
		? true
		: _(
				'"%s" is not a host name suffix: labels of 1-63 A-Z a-z 0-9 _ -, without "-" at either end, 253 characters at most'
			).format(v);
}

/* A reverse tunnel proves the mesh identity: without a mesh section the daemon refuses it (config.ts). */
function checkReverseMesh(hasMesh) {
	return hasMesh ? true : _('A reverse tunnel needs the mesh identity: add the "Mesh identity" section');
}

/*
 * An hbone upstream's server (empty: `value` ''): required unless the peer
 * is named by identity or node, then reached only through its reverse
 * tunnel (uci-config.ts), and always for a relay (config.ts hboneUpstream);
 * other types always need one.
 */
function checkUpstreamServerSet(value, type, identity, node, relay) {
	if (value !== '') return checkUpstreamServer(value, type);

	if (type === 'hbone' && relay) return _('A relay needs a server (its streams are dialed, not on a reverse tunnel)');

	if (type === 'hbone')
		return identity !== '' || node !== ''
			? true
			: _('Set the server, or name the peer (identity or node) to reach it through its reverse tunnel');

	return _('Expecting: %s').format(_('non-empty value'));
}

/* An upstream's port (empty: `value` ''): an hbone peer's defaults to 15008, other types need one. */
function checkUpstreamPort(value, type) {
	if (value === '') return type === 'hbone' ? true : _('Expecting: %s').format(_('non-empty value'));

	return checkEndpointPort(value, 1);
}

/* A file path of the mesh section (config.ts filePath). */
function checkFilePath(v) {
	return v.charAt(0) === '/' && v.length <= 4095 && !CONTROL_RE.test(v)
		? true
		: _('"%s" is not an absolute file path').format(v);
}

return baseclass.extend({
	__name__: 'ugate',

	isTrue: isTrue,
	flagValue: flagValue,

	checkCapturePort: checkCapturePort,
	checkCaptureCidr: checkCaptureCidr,
	checkCaptureListener: checkCaptureListener,
	checkAdminListen: checkAdminListen,
	checkCidr: checkCidr,
	checkCredentialPair: checkCredentialPair,
	checkDnsServer: checkDnsServer,
	checkDomainName: checkDomainName,
	checkDomainSuffix: checkDomainSuffix,
	checkEndpointPort: checkEndpointPort,
	checkFilePath: checkFilePath,
	checkForward: checkForward,
	checkHostLine: checkHostLine,
	checkIfname: checkIfname,
	checkInteger: checkInteger,
	checkIp: checkIp,
	checkKeyword: checkKeyword,
	checkListenAddress: checkListenAddress,
	checkListenerName: checkListenerName,
	checkListenPort: checkListenPort,
	checkMac: checkMac,
	checkMark: checkMark,
	checkName: checkName,
	checkNetwork: checkNetwork,
	checkNodeId: checkNodeId,
	checkNodeSuffix: checkNodeSuffix,
	checkPortRange: checkPortRange,
	checkReverseMesh: checkReverseMesh,
	checkProto: checkProto,
	checkRuleName: checkRuleName,
	checkSecret: checkSecret,
	checkSeconds: checkSeconds,
	checkServer: checkServer,
	checkSocketPath: checkSocketPath,
	checkSpiffeId: checkSpiffeId,
	checkTarget: checkTarget,
	checkTproxyMark: checkTproxyMark,
	checkTproxyNetwork: checkTproxyNetwork,
	checkTrustDomain: checkTrustDomain,
	checkUpstreamIdentity: checkUpstreamIdentity,
	checkUpstreamRef: checkUpstreamRef,
	checkUpstreamNode: checkUpstreamNode,
	checkUpstreamPort: checkUpstreamPort,
	checkUpstreamServer: checkUpstreamServer,
	checkUpstreamServerSet: checkUpstreamServerSet,
	checkUsers: checkUsers
});
