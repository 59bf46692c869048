# mk/deps.mk - where the libraries come from, for the daemon's build and fuzz/ alike.
#
# Asks pkg-config (PKG_CONFIG, honouring PKG_CONFIG_LIBDIR for a cross-build) what this Debian
# release ships, and falls back to Debian 12's layout where a library has no .pc file:
#   libuv    pkg-config libuv-static: libuv_a.a on Debian 12 (1.44), libuv.a on Debian 13 (1.50)
#   jansson  pkg-config jansson, linked from its static archive
#   llhttp   pkg-config libllhttp: Debian 13's libllhttp-dev (9.x), a static libllhttp.a; else
#            Debian 12's node-llhttp (8.1), whose C sources (LLHTTP_SRC) each build compiles
# Sets LLHTTP_CPPFLAGS, LLHTTP_SRC (empty when linking the library), LLHTTP_LIBS, UV_LIBS,
# JANSSON_LIBS and SYS_LIBS. libuv, jansson and llhttp end up static: the binary needs glibc only.

PKG_CONFIG ?= pkg-config
pc_exists = $(shell $(PKG_CONFIG) --exists $(1) 2>/dev/null && echo yes)
SYS_LIBS := -lpthread -ldl -lrt

ifeq ($(call pc_exists,libuv-static),yes)
UV_LIBS := $(filter-out $(SYS_LIBS),$(shell $(PKG_CONFIG) --libs --static libuv-static))
UV_CPPFLAGS := $(shell $(PKG_CONFIG) --cflags libuv-static)
else
UV_LIBS := -luv_a
UV_CPPFLAGS :=
endif

ifeq ($(call pc_exists,jansson),yes)
JANSSON_LIBS := $(shell $(PKG_CONFIG) --libs jansson)
JANSSON_CPPFLAGS := $(shell $(PKG_CONFIG) --cflags jansson)
else
JANSSON_LIBS := -ljansson
JANSSON_CPPFLAGS :=
endif

# llhttp 8.1's strict mode (a compile-time switch, for its sources and its header alike) refuses
# bare LF line ends, bad tokens and the like that a front door must not let through. llhttp 9
# is strict by default, with run-time lenient flags that we leave off; the define is then unused.
LLHTTP_STRICT := -DLLHTTP_STRICT_MODE=1
ifeq ($(call pc_exists,libllhttp),yes)
LLHTTP_SRC :=
LLHTTP_CPPFLAGS := $(shell $(PKG_CONFIG) --cflags libllhttp) $(LLHTTP_STRICT)
LLHTTP_LIBS := $(shell $(PKG_CONFIG) --libs libllhttp)
else
LLHTTP_SRC := /usr/share/llhttp
LLHTTP_CPPFLAGS := -I/usr/share/include/llhttp $(LLHTTP_STRICT)
LLHTTP_LIBS :=
endif

# OpenSSL: headers only (libssl-dev); the daemon dlopen()s libssl.so.3 when TLS is configured (tls.h).
OPENSSL_CPPFLAGS := $(shell $(PKG_CONFIG) --cflags openssl 2>/dev/null)

DEPS_CPPFLAGS := $(UV_CPPFLAGS) $(JANSSON_CPPFLAGS) $(LLHTTP_CPPFLAGS) $(OPENSSL_CPPFLAGS)
# Static archives for the three libraries (-Bstatic makes -lllhttp and -ljansson take the .a where
# a .so sits beside it), glibc's dynamically.
DEPS_LIBS := -Wl,-Bstatic $(LLHTTP_LIBS) $(UV_LIBS) $(JANSSON_LIBS) -Wl,-Bdynamic $(SYS_LIBS)
