# controller/topo.mk — the intent compiler (pure), its unit/golden/property
# tests and its benchmark.
TOPO_SRCS := controller/topo.c controller/topo_need.c
TOPO_OBJS := $(TOPO_SRCS:%.c=$(BUILD)/%.o)
ANALYZE_SRCS += $(TOPO_SRCS)

TEST_BINS += $(BUILD)/tests/unit/test_topo
TESTS     += $(BUILD)/tests/unit/test_topo
$(BUILD)/tests/unit/test_topo: $(BUILD)/tests/unit/test_topo.o \
		$(TOPO_OBJS) $(MODEL_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_CMOCKA))

TEST_BINS += $(BUILD)/tests/unit/test_topo_need
TESTS     += $(BUILD)/tests/unit/test_topo_need
$(BUILD)/tests/unit/test_topo_need: $(BUILD)/tests/unit/test_topo_need.o \
		$(BUILD)/controller/api_index.o $(TOPO_OBJS) $(MODEL_OBJS) \
		$(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_CMOCKA))

# make bench builds the program and runs the script (which prints the
# figures); the script also runs standalone.
BENCHES += tests/bench/topo_bench.sh
bench: $(BUILD)/tests/bench/topo_bench
$(BUILD)/tests/bench/topo_bench: $(BUILD)/tests/bench/topo_bench.o \
		$(TOPO_OBJS) $(STORE_OBJS) $(MODEL_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(STORE_LIBS))
