# controller/store.mk — the model (pure validation) and the store with its
# sqlite and PostgreSQL backends; the unit tests of both.  Users of the store link
# $(STORE_OBJS) $(MODEL_OBJS) with $(STORE_LIBS).
MODEL_SRCS := controller/model.c
MODEL_OBJS := $(MODEL_SRCS:%.c=$(BUILD)/%.o)
STORE_SRCS := controller/store.c controller/store_sqlite.c \
	controller/store_pg.c
STORE_OBJS := $(STORE_SRCS:%.c=$(BUILD)/%.o)
# Link line for anything using the store (model objects come with it).
STORE_LIBS := $(LIBS_SQLITE) $(LIBS_PQ) $(LIBS_CRYPTO)
CFLAGS_PQ  := $(shell $(PKG_CONFIG) --cflags libpq 2>/dev/null)
$(BUILD)/controller/store_pg.o: EXTRA_CFLAGS += $(CFLAGS_PQ)
ANALYZE_SRCS += $(MODEL_SRCS) $(STORE_SRCS)

TEST_BINS += $(BUILD)/tests/unit/test_model $(BUILD)/tests/unit/test_store
TESTS     += $(BUILD)/tests/unit/test_model $(BUILD)/tests/unit/test_store \
	     tests/unit/test_store_pg.sh
$(BUILD)/tests/unit/test_model: $(BUILD)/tests/unit/test_model.o \
		$(MODEL_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_CMOCKA))
# test_store also drives the compiler (topo.mk is read after this file).
$(BUILD)/tests/unit/test_store: $(BUILD)/tests/unit/test_store.o \
		$(STORE_OBJS) $(BUILD)/controller/topo.o $(MODEL_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(STORE_LIBS) $(LIBS_CMOCKA))
$(BUILD)/tests/unit/test_store.o: EXTRA_CFLAGS += $(CFLAGS_PQ)
