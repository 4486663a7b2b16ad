# edge-agent/status.mk — status.c: the root-only control socket behind
# `meshwan-edge status` and Prometheus /metrics (through controller/http.c,
# the one libmicrohttpd wrapper), and their tests.
#
# The agent links $(STATUS_OBJS) with $(STATUS_LIBS).
STATUS_SRCS := edge-agent/status.c
STATUS_OBJS := $(BUILD)/edge-agent/status.o $(BUILD)/controller/http.o
STATUS_LIBS := $(LIBS_HTTPD) $(LIBS_JANSSON) -lpthread
ANALYZE_SRCS += $(STATUS_SRCS)
# meshwan-edge (agent.mk, read before this fragment) links them; its
# recipe adds $(STATUS_LIBS).
$(EDGE_AGENT): $(STATUS_OBJS)

TEST_BINS += $(BUILD)/tests/unit/test_edge_status
TESTS     += $(BUILD)/tests/unit/test_edge_status tests/edge/status_asan.sh \
             tests/edge/status_agent.sh
$(BUILD)/tests/unit/test_edge_status: $(BUILD)/tests/unit/test_edge_status.o \
		$(STATUS_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(STATUS_LIBS) $(LIBS_CURL) $(LIBS_CMOCKA))
