# lib/ — shared runtime of both daemons; no outside dependency.
LIB_SRCS := lib/backoff.c lib/log.c lib/util.c
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
ANALYZE_SRCS += $(LIB_SRCS)

TEST_BINS += $(BUILD)/tests/unit/test_lib
TESTS     += $(BUILD)/tests/unit/test_lib
$(BUILD)/tests/unit/test_lib: $(BUILD)/tests/unit/test_lib.o $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_CMOCKA))
