# controller/api.mk — the REST API (http.c is the only libmicrohttpd user,
# api.c the routes, auth.c the tokens, metrics.c /metrics), the CLI
# meshwanctl (the only libcurl user outside tests), and their tests.
#
# The daemon links $(API_OBJS) with $(API_LIBS).
API_SRCS := controller/http.c controller/api.c controller/auth.c \
            controller/metrics.c
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
