vcl 4.1;
# Varnish (Debian's `varnish` package, 7.x) in front of `feedsvc serve`: a cache tier that feedsvc
# tells what changed. With FEEDSVC_PURGE_URLS=http://127.0.0.1:6081 (this Varnish), after every
# rebuild feedsvc sends
#
#   BAN /feeds/<channel>   for each channel whose feeds changed: every document of the channel
#                          (its three formats, every ?before=/?limit= page, its preview page, in
#                          every encoding) carries the channel's stamp, so all of them changed;
#   PURGE /                the index page, and PURGE /feeds.opml when the list changed.
#
# Everything else is ordinary HTTP caching by feedsvc's own headers: feeds for their max-age
# (FEEDSVC_CACHE_MAX_AGE), one object per URL and encoding (gzip or identity), revalidated
# with feedsvc's ETag and Last-Modified once expired, and served stale while feedsvc restarts or
# fails. See the README's "A cache tier in front: Varnish".
#
# On one host: `feedsvc serve` on 127.0.0.1:8000 and
#   varnishd -a :6081 -f /etc/varnish/varnish.vcl -s malloc,256m
# (Debian: copy it to /etc/varnish/default.vcl, which varnish.service loads, listening on :6081).
# deploy/compose.yaml runs both in one network namespace, so the same addresses hold there.

import std;

backend feedsvc {
    .host = "127.0.0.1";
    .port = "8000";
    .connect_timeout = 1s;
    .first_byte_timeout = 15s;     # a cold page render; feeds themselves are prebuilt bytes
    .between_bytes_timeout = 5s;
    # /healthz answers 503 until the first build, then 200; a backend that fails 2 of 3 probes is
    # sick, and then every cached document is served for its whole grace (stale-if-error).
    .probe = {
        .url = "/healthz";
        .interval = 1s;
        .timeout = 1s;
        .window = 3;
        .threshold = 2;
        .initial = 2;
    }
}

# Who may PURGE and BAN: the feedsvc replicas. Keep it narrow: a purge from anyone else is an easy
# way to send every request to the backend.
acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    unset req.http.x-feedsvc-identity;   # ours (see below), never a client's
    if (req.method == "PURGE" || req.method == "BAN") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        # Bans test obj.* only, so Varnish's ban lurker evicts the objects in the background and
        # drops each ban once it has tested them all (a req.url ban would stay on the list).
        if (req.method == "PURGE" && req.url ~ "^/[A-Za-z0-9/._~%=&-]*$") {
            ban("obj.http.x-feedsvc-url == " + req.url);   # this URL in every encoding
            return (synth(200, "Purged"));
        }
        # A channel's path, as feedsvc makes them (lower-case letters, digits and single hyphens:
        # `all`, a feed of its own such as `featured`, or `<kind>/<slug>`), so it is safe to put into
        # a regular expression as it is.
        if (req.method == "BAN" && req.url ~ "^/feeds/([a-z]+/)?[a-z0-9]+(-[a-z0-9]+)*$") {
            ban("obj.http.x-feedsvc-url ~ ^" + req.url + "([.](atom|rss|json))?([?].*)?$");
            return (synth(200, "Banned"));
        }
        return (synth(400, "Bad purge"));
    }
    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);              # feedsvc answers 405
    }
    if (req.url ~ "^/(healthz|metrics)([?]|$)") {
        return (pass);              # no-store, and the operator view depends on Authorization
    }
    # feedsvc's answers depend on the path, the query and the encoding, never on Host, cookies or
    # credentials: one object per URL and encoding (vcl_hash), whatever a reader sends besides.
    unset req.http.Cookie;
    unset req.http.Authorization;
    set req.url = std.querysort(req.url);
    # gzip or identity: feedsvc gzips each feed once and gives it its own ETag. The choice is kept
    # for vcl_backend_fetch, since Varnish itself would always fetch gzip and gunzip for identity
    # clients (weakening the ETag).
    if (req.http.Accept-Encoding ~ "(^|,)\s*(x-)?gzip\s*(,|;\s*q=(1|0?[.][0-9]*[1-9])|$)") {
        set req.http.Accept-Encoding = "gzip";
    } else {
        unset req.http.Accept-Encoding;
        set req.http.x-feedsvc-identity = "1";
    }
    # Stale-while-revalidate: an expired object is served at once, for 10 s past its max-age, while
    # one background fetch revalidates it. With the backend sick, the whole grace (stale-if-error);
    # likewise on the restart vcl_deliver makes after a failed fetch.
    if (req.restarts == 0 && std.healthy(req.backend_hint)) {
        set req.grace = 10s;
    }
    return (hash);
}

sub vcl_hash {
    # The encoding is in the hash, not left to Vary: with http_gzip_support on (the default)
    # Varnish leaves Accept-Encoding out of Vary, and would hand gzip clients the identity object.
    hash_data(req.url);
    hash_data(req.http.Accept-Encoding);
    return (lookup);
}

sub vcl_backend_fetch {
    if (bereq.uncacheable) {
        return (fetch);     # a pass (/healthz, /metrics): the client's own Accept-Encoding
    }
    if (bereq.http.x-feedsvc-identity) {
        unset bereq.http.Accept-Encoding;
    } else {
        set bereq.http.Accept-Encoding = "gzip";
    }
    unset bereq.http.x-feedsvc-identity;
}

sub vcl_backend_response {
    # A failed background revalidation keeps the stale object rather than caching the error.
    if (beresp.status >= 500 && bereq.is_bgfetch) {
        return (abandon);
    }
    set beresp.http.x-feedsvc-url = bereq.url;     # what bans test (see vcl_recv)
    if (beresp.status == 404 && !beresp.http.Cache-Control) {
        set beresp.ttl = 10s;   # not Varnish's 2 min: a post page (/posts/<slug>) may appear any moment
    }
    set beresp.do_gzip = false;                    # feedsvc compresses; never a second gzip
    set beresp.do_gunzip = false;
    set beresp.grace = 24h;                        # served while feedsvc is down for up to a day
    set beresp.keep = 7d;                          # kept for conditional revalidation (If-None-Match)
}

sub vcl_deliver {
    unset resp.http.x-feedsvc-url;
    # A failed fetch (feedsvc stopped, before the probe noticed): once more, with the whole grace,
    # which finds the last good object if there is one. Not for feedsvc's own 503 Busy (Retry-After).
    if (resp.status >= 500 && req.restarts == 0 && !resp.http.Retry-After) {
        return (restart);
    }
}
