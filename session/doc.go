// Package session keeps clients on the backend they were sent to before:
// by cookie for HTTP and HTTPS listeners ([Sticky]), by source address for
// TCP and UDP listeners ([Affinity]). It maps cookies and addresses to
// backend IDs (strings) and back; it never picks a backend and does not
// import balancer. The listener passes the ID it recovers to its group's
// PickSticky, which returns that member if it is still a current, healthy
// member of the tier taking traffic and otherwise makes a fresh pick. So a
// cookie or table entry naming a missing, removed or unhealthy backend
// falls back to a normal pick, and nothing this package returns can route
// to a non-member.
//
// # Cookies
//
// In [Insert] mode (the CLB's "insert") the balancer adds its own cookie,
// SERVERID by default:
//
//	Set-Cookie: SERVERID=<token>; Path=/; Max-Age=<CookieTimeout>; HttpOnly; SameSite=Lax|None[; Secure]
//
// Secure is added on HTTPS (the caller says which). SameSite is None on
// HTTPS and Lax on plain HTTP, where browsers refuse None: the cookie
// grants nothing — it is a routing hint the balancer re-checks — so there
// is no cross-site request forgery to defend against, and the permissive
// mode keeps stickiness across cross-site POST callbacks (SAML, OIDC
// form_post) that Lax drops. Config.SameSite overrides it. The balancer
// strips its cookie from requests before forwarding them.
//
// In [Rewrite] mode (the CLB's "server") the application sets its own
// cookie; on the way out the balancer appends '~' and the token to that
// cookie's value (inside the quotes of a quoted value), keeping every
// attribute byte for byte, and on the way in it removes them, so the
// application gets back exactly its value — quotes, '~' characters and
// empty values included. The token has a fixed length and is always
// last, so the split is unambiguous. Deletion cookies (Max-Age ≤ 0 or an
// Expires not in the future) pass unchanged.
//
// # Tokens
//
// A token is 44 characters of unpadded base64url encoding 33 bytes:
// version, issue time (Unix seconds), a 96-bit tag of the backend ID
// (HMAC-SHA-256 under a key derived from Config.Key) and a 128-bit
// HMAC-SHA-256 of the rest, compared in constant time. Neither the
// backend's address nor its ID (which often is its address) appears: a
// token is mapped back to an ID through the set of known backends — the
// members of Config.Groups, which the Sticky follows by itself (a
// *balancer.Group is a [Group]), or a fixed set in Config.Backends. One of
// them is required: a Sticky that knows no backend would set a cookie on
// every response and never honour one. Decoding takes no lock and
// allocates nothing. A forged, truncated, altered, foreign-key
// or unknown-backend token decodes as "no session", never as an error.
//
// The issue time lets the balancer enforce CookieTimeout itself, even on a
// client that keeps the cookie past Max-Age. An active client's cookie is
// re-issued once half CookieTimeout has passed, so the session lasts as
// long as the client keeps coming back within CookieTimeout. Rewrite mode
// does not check the age: the application's cookie decides the lifetime.
//
// # Keys
//
// Config.Key (at least 16 bytes) should be set, and set alike on every
// process behind the same address. Without it New generates a random key:
// sessions then end when the process restarts and are not honoured by
// other processes. To rotate, deploy the new key with the old one as
// Config.PreviousKey (or call [Sticky.SetKeys]); tokens under the old key
// keep working and are re-issued under the new one.
//
// # 3xx and 4xx responses
//
// The CLB does not set its cookie on 3xx and 4xx responses, so a login
// that answers 302 loses stickiness. Here [Sticky.Response] treats every
// status alike: in Insert mode it sets the cookie on any response whose
// backend differs from the one the request's cookie named (or that had no
// cookie), redirects and errors included, so the request that follows a
// login redirect reaches the backend that handled the login. In Rewrite
// mode the token rides on whatever Set-Cookie the application sends, on
// any status; if the application sends none, nothing is added, because the
// balancer cannot know the cookie's Path, Domain or lifetime.
//
// # HTTP listener
//
//	sess := st.Request(req.Header)           // before forwarding; fixes Cookie in place
//	p, err := group.PickSticky(sess.ID, key) // "" or a stale ID: a fresh pick
//	// … forward to p.Member, get resp …
//	st.Response(resp.Header, sess, p.Member.ID(), isHTTPS) // before writing the response
//	p.Done(balancer.DoneInfo{Latency: head})                // when the request ends
//
// with st made by New(Config{Groups: []Group{group}}), so that it follows
// the group's membership.
//
// # Source-IP persistence
//
// [Affinity] is the TCP and UDP listeners' table (any PersistenceTimeout,
// 0 = off): a sharded map from source address to backend ID with
// an idle timeout, bounded in size with per-shard LRU eviction, reclaimed
// lazily and by [Affinity.Sweep] without any goroutine:
//
//	id, _ := aff.Lookup(src)            // on a new connection or flow
//	p, err := group.PickSticky(id, key)
//	aff.Set(src, p.Member.ID())         // bind, restart the idle time
//	// … when the connection or flow ends:
//	aff.Touch(src)                      // restart the idle time
//	p.Done(balancer.DoneInfo{Latency: connectTime})
//	aff.Sweep()                         // periodically; aff.Delete(id) on removal
//
// See the package Example, and the NewAffinity example for the TCP side.
package session
