# controller/api.mk — the REST API (http.c is the only libmicrohttpd user,
# api.c the routes, auth.c the tokens, metrics.c /metrics), the CLI
# meshwanctl (the only libcurl user outside tests), and their tests.
#
# The daemon links $(API_OBJS) with $(API_LIBS).
API_SRCS := controller/http.c controller/api.c controller/auth.c \
            controller/metrics.c controller/events.c controller/web.c
# The API's index of the committed model (pool and endpoint checks).
API_SRCS += controller/api_index.c
API_OBJS := $(API_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/controller/api_doc.o
API_LIBS := $(LIBS_HTTPD) $(LIBS_JANSSON) -lpthread
LIBS_CURL := -lcurl
ANALYZE_SRCS += $(API_SRCS) controller/ctl/meshwanctl.c

# The OpenAPI document is linked into the binary (.incbin).
$(BUILD)/controller/api_doc.o: controller/web/openapi.json

BINS += $(BUILD)/controller/meshwanctl
$(BUILD)/controller/meshwanctl: $(BUILD)/controller/ctl/meshwanctl.o \
		$(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_CURL) $(LIBS_JANSSON))

# Everything a program serving the API needs besides its own main.
API_ALL_OBJS := $(API_OBJS) $(STORE_OBJS) $(TOPO_OBJS) $(MODEL_OBJS) \
                $(LIB_OBJS)

# A small server (API + store, no gRPC) for the CLI and curl tests.
TEST_BINS += $(BUILD)/tests/api/api_test_server
$(BUILD)/tests/api/api_test_server: $(BUILD)/tests/api/api_test_server.o \
		$(API_ALL_OBJS)
	$(call link,$@,$^,$(API_LIBS) $(STORE_LIBS))

# A slow HTTP client for tests/api/slowloris.sh (no library needed).
TEST_BINS += $(BUILD)/tests/api/slowloris
$(BUILD)/tests/api/slowloris: $(BUILD)/tests/api/slowloris.o
	$(call link,$@,$^,)

TEST_BINS += $(BUILD)/tests/unit/test_api
TESTS     += $(BUILD)/tests/unit/test_api tests/api/rest_curl.sh \
             tests/api/meshwanctl.sh tests/api/api_asan.sh \
             tests/api/slowloris.sh
$(BUILD)/tests/unit/test_api: $(BUILD)/tests/unit/test_api.o \
		$(API_ALL_OBJS)
	$(call link,$@,$^,$(API_LIBS) $(STORE_LIBS) $(LIBS_CURL) \
		$(LIBS_CMOCKA))

# The event ring, streams and health history (controller/events.c).
TEST_BINS += $(BUILD)/tests/unit/test_events
TESTS     += $(BUILD)/tests/unit/test_events
$(BUILD)/tests/unit/test_events: $(BUILD)/tests/unit/test_events.o \
		$(BUILD)/controller/events.o $(STORE_OBJS) $(MODEL_OBJS) \
		$(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_JANSSON) $(STORE_LIBS) $(LIBS_CMOCKA) \
		-lpthread)

# The dashboard's server side against the real controller: HTTPS,
# security headers, static files, the event stream, health history; and
# the same under ASan/UBSan.
TESTS += tests/ctl/https_web.sh tests/ctl/events_stream.sh \
         tests/ctl/dash_asan.sh

# REST change cost at scale (make bench; tests/bench/api_bench.sh).
BENCHES += $(BUILD)/tests/bench/api_bench
$(BUILD)/tests/bench/api_bench: $(BUILD)/tests/bench/api_bench.o \
		$(API_ALL_OBJS)
	$(call link,$@,$^,$(API_LIBS) $(STORE_LIBS) $(LIBS_CURL))

# `make install` puts the dashboard where web_root looks by default
# (controller/config.h CONFIG_WEB_ROOT_DEFAULT); DESTDIR for packaging.
WEB_INSTALL_DIR := $(DESTDIR)/usr/share/meshwan/web
.PHONY: install install-web
install: install-web
install-web:
	install -d -m 755 $(WEB_INSTALL_DIR)
	cp -R controller/web/. $(WEB_INSTALL_DIR)/
