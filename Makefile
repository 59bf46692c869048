# qbit-gluetun-sync - build, test and demo. `make help` lists the targets.
#
# Two build variants live side by side: build/release (what ships) and
# build/asan (AddressSanitizer + UndefinedBehaviorSanitizer, for tests).
# The libraries come from Debian (mk/deps.mk finds them): libuv, jansson and
# llhttp are linked statically. Where Debian ships llhttp only as C sources
# (Debian 12), each variant compiles them into its own static library, warnings
# off for them alone.

VARIANT ?= release
BUILD   := build/$(VARIANT)
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

CC      ?= cc
# A cross-build: CROSS=<Debian multiarch triplet> (aarch64-linux-gnu) builds into
# build/<triplet>-<variant> with that triplet's gcc, against that architecture's -dev
# packages (dpkg multiarch); RUN runs what it built (qemu-user). make arm64-check does both.
CROSS   ?=
RUN     ?=
ifneq ($(CROSS),)
CC         := $(CROSS)-gcc
AR         := $(CROSS)-ar
PKG_CONFIG := PKG_CONFIG_LIBDIR=/usr/lib/$(CROSS)/pkgconfig:/usr/share/pkgconfig pkg-config
BUILD      := build/$(CROSS)-$(VARIANT)
endif
include mk/deps.mk

ifeq ($(VARIANT),asan)
OPT      := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN    := -fsanitize=address,undefined
else ifeq ($(VARIANT),release)
OPT      := -O2 -g -D_FORTIFY_SOURCE=2 -fstack-protector-strong
# What runs once or now and then (start-up, configuration, the port sync, the endpoints) is
# built for size: every page of code counts toward the idle memory the README promises, and
# these run too seldom for speed to show. The request path stays at -O2.
OPT_COLD := -Os -g -D_FORTIFY_SOURCE=2 -fstack-protector-strong
LDSAN    :=
else
$(error VARIANT must be release or asan)
endif

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla
CPPFLAGS := -D_GNU_SOURCE -DQGS_VERSION='"$(VERSION)"' -Isrc $(DEPS_CPPFLAGS)
CFLAGS   := -std=gnu11 $(OPT) $(WARN)
LDLIBS   := -Wl,--as-needed $(DEPS_LIBS)
# Segments start on 64 KiB boundaries in the file as well as in memory. The kernel maps a
# program's pages in blocks of up to 64 KiB around each fault (fault-around; large page-cache
# folios are 64 KiB-aligned in the file), so read-only data that straddles a block boundary
# drags the unwind tables next to it into memory: +44 KiB of private memory, seen when
# .rodata crossed one. Aligned, what is resident no longer depends on how large the code
# before it happens to be. Costs up to 64 KiB of file padding per segment; arm64's default.
LDFLAGS  := $(LDSAN) -Wl,-z,relro,-z,now -Wl,-z,max-page-size=0x10000

SRCS     := $(wildcard src/*.c)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o)
# Our own static llhttp, only where Debian ships its sources rather than the library.
LLHTTP_OBJS := $(if $(LLHTTP_SRC),$(BUILD)/llhttp/api.o $(BUILD)/llhttp/http.o $(BUILD)/llhttp/llhttp.o)
LLHTTP_LIB  := $(if $(LLHTTP_SRC),$(BUILD)/libllhttp.a)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
BIN      := $(BUILD)/qbit-gluetun-sync
PYTHON   := /usr/bin/python3

COLD_SRCS := allowlist apicall backoff certs config endpoints filewatch gluetun healthcheck hostcheck log main metrics \
	parse portfile qbt sync url watcher
ifneq ($(OPT_COLD),)
$(COLD_SRCS:%=$(BUILD)/obj/%.o): CFLAGS := -std=gnu11 $(OPT_COLD) $(WARN)
endif

# Objects are rebuilt when the compiler flags change (an edit here, CC=clang, ...),
# not only when sources do: the flags of the last build are kept in a stamp file.
FLAGS_STAMP := $(BUILD)/.flags
BUILD_FLAGS := $(CC) $(CPPFLAGS) $(CFLAGS) $(OPT) $(OPT_COLD) $(LDFLAGS) $(LDLIBS)
ifneq ($(strip $(BUILD_FLAGS)),$(strip $(file < $(FLAGS_STAMP))))
$(shell mkdir -p $(BUILD))
$(file > $(FLAGS_STAMP),$(strip $(BUILD_FLAGS)))
endif

.PHONY: all help deps browser-deps qbt-root arm64-check build unit-build unit e2e test test-variant format format-check demo run clean \
	fuzz fuzz-smoke

all: $(BIN)

help:
	@echo "make demo    install what is needed, build, and run the daemon (the README's first command)"
	@echo "make test    install what is needed, then run every test in both build variants"
	@echo "make         build build/release/qbit-gluetun-sync"
	@echo "make format  reformat the C sources with $(CLANG_FORMAT)"
	@echo "make fuzz    run every fuzz driver (SECONDS=N each, default 60)"
	@echo "make arm64-check  cross-build for arm64, run its unit tests and a smoke under qemu-user"

deps:
	@scripts/install-deps.sh

# playwright-core for the browser test, pinned by the committed lock file.
BROWSER_DIR := tests/e2e/browser
browser-deps: $(BROWSER_DIR)/node_modules/.package-lock.json
$(BROWSER_DIR)/node_modules/.package-lock.json: $(BROWSER_DIR)/package-lock.json
	cd $(BROWSER_DIR) && npm ci --no-audit --no-fund --loglevel=error

# V=1 shows the full commands.
Q := $(if $(V),,@)

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) $(FLAGS_STAMP) | $(BUILD)/obj
	@echo "  CC    $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/llhttp/%.o: $(LLHTTP_SRC)/%.c $(FLAGS_STAMP) | $(BUILD)/llhttp
	@echo "  CC    $@ (Debian's llhttp, warnings off)"
	$(Q)$(CC) $(LLHTTP_CPPFLAGS) -std=gnu11 $(OPT) -w -c -o $@ $<

$(BUILD)/libllhttp.a: $(LLHTTP_OBJS)
	$(Q)$(AR) rcs $@ $^

$(BUILD)/libqgs.a: $(LIB_OBJS)
	$(Q)$(AR) rcs $@ $^

$(BIN): $(BUILD)/obj/main.o $(BUILD)/libqgs.a $(LLHTTP_LIB)
	@echo "  LD    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(BUILD)/libqgs.a $(LLHTTP_LIB) | $(BUILD)/tests
	@echo "  CC    $@"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $(filter-out %.h,$^) -lcmocka $(LDLIBS)

$(BUILD)/obj $(BUILD)/llhttp $(BUILD)/tests:
	mkdir -p $@

build: $(BIN)
unit-build: $(UNIT_BINS)

# Runs every unit test program; cmocka prints a summary per program. Finding none
# is a failure, not a pass (pytest likewise exits 5 when it collects no test).
unit: $(UNIT_BINS)
	@test -n "$(UNIT_BINS)" || { echo "unit: no test programs in tests/unit" >&2; exit 1; }
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $(RUN) $$t; done

e2e: $(BIN) browser-deps
	QGS_BIN=$(abspath $(BIN)) QGS_SANITIZED=$(if $(filter asan,$(VARIANT)),1,0) \
	  $(PYTHON) -m pytest -q -rfEsx -p no:cacheprovider tests/e2e

# One variant: build, unit tests, end-to-end tests.
test-variant: build unit e2e

# The newest qbittorrent-nox Debian ships, in a Debian root cached outside the checkout
# (scripts/qbt-root.sh says where); the end-to-end suites run against it and the host's own.
qbt-root:
	@scripts/qbt-root.sh

# arm64 without arm64 hardware: the cross-build (release), its unit tests and a short end-to-end
# smoke (tests/e2e/test_smoke.py and the command line) under qemu-user. It needs the arm64
# architecture in dpkg (scripts/install-deps.sh arm64 adds it), so it is not part of make test.
ARM64       := aarch64-linux-gnu
ARM64_QEMU  := qemu-aarch64-static
ARM64_BUILD := build/$(ARM64)-release
arm64-check:
	@command -v $(ARM64)-gcc >/dev/null && command -v $(ARM64_QEMU) >/dev/null || \
	  { echo "arm64-check: needs $(ARM64)-gcc and $(ARM64_QEMU): run scripts/install-deps.sh arm64" >&2; exit 1; }
	@$(MAKE) --no-print-directory CROSS=$(ARM64) VARIANT=release RUN=$(ARM64_QEMU) build unit
	@file -b $(ARM64_BUILD)/qbit-gluetun-sync | grep -q 'ARM aarch64' || \
	  { echo "arm64-check: $(ARM64_BUILD)/qbit-gluetun-sync is not an arm64 binary" >&2; exit 1; }
	@needed=$$($(ARM64)-readelf -d $(ARM64_BUILD)/qbit-gluetun-sync | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); \
	  other=$$(echo "$$needed" | grep -vE '^(libc\.so\.6|ld-linux-aarch64\.so\.1)$$' || true); \
	  [ -z "$$other" ] || { echo "arm64-check: the binary needs $$other, not only glibc" >&2; exit 1; }
	@printf '#!/bin/sh\nexec $(ARM64_QEMU) %s "$$@"\n' "$(abspath $(ARM64_BUILD))/qbit-gluetun-sync" \
	  > $(ARM64_BUILD)/qbit-gluetun-sync-qemu && chmod +x $(ARM64_BUILD)/qbit-gluetun-sync-qemu
	QGS_BIN=$(abspath $(ARM64_BUILD))/qbit-gluetun-sync-qemu QGS_SANITIZED=0 QGS_QBT_BUILDS=none \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests/e2e/test_smoke.py tests/e2e/test_cli.py
	@echo "arm64-check: passed (cross-built, unit tests and smoke under $(ARM64_QEMU))"

# The whole suite, as CI runs it: formatting, then both variants.
test: deps
	@$(MAKE) --no-print-directory format-check browser-deps qbt-root
	@$(MAKE) --no-print-directory VARIANT=release test-variant
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(MAKE) --no-print-directory VARIANT=asan test-variant
	@$(MAKE) --no-print-directory fuzz-smoke
	@echo "all tests passed (release and asan+ubsan, fuzz smoke)"

# libFuzzer drivers for every parser (fuzz/): `make fuzz SECONDS=600` fuzzes each for that long;
# the test command runs each for a few seconds after replaying its regression inputs.
fuzz:
	@$(MAKE) --no-print-directory -C fuzz run $(if $(SECONDS),SECONDS=$(SECONDS))

fuzz-smoke:
	@$(MAKE) --no-print-directory -C fuzz smoke -j2

# The sources are formatted with one clang-format major version (major versions format some
# constructs differently); Debian 12 and 13 both ship clang-format-19. Where it is absent the
# check says so and passes: another version's opinion is not a failure of the sources.
CLANG_FORMAT := clang-format-19
FORMAT_FILES = $(wildcard src/*.c src/*.h tests/unit/*.c tests/unit/*.h tests/e2e/*.c fuzz/*.c fuzz/*.h)
format:
	$(CLANG_FORMAT) -i $(FORMAT_FILES)

format-check:
	@if ! command -v $(CLANG_FORMAT) >/dev/null 2>&1; then \
	  echo "format-check: skipped: $(CLANG_FORMAT) is not installed (the sources are formatted with it)"; \
	else $(CLANG_FORMAT) --dry-run --Werror $(FORMAT_FILES) && echo "format-check: ok ($(CLANG_FORMAT))"; fi

# The build runs in a make of its own, after deps: which libraries this release has (mk/deps.mk)
# is decided when a make starts, and on a fresh machine deps has only just installed them.
demo: deps
	@$(MAKE) --no-print-directory build
	@scripts/demo.py

run: $(BIN)
	$(BIN)

clean:
	rm -rf build
