# proto/ — the wire contract and the only code that touches gRPC
# (rpc.c, see rpc.mk) or generated protobuf-c types (pbconv.c, pbconv.mk).
# protoc-c output goes to $(BUILD)/proto and is never committed.

PROTO_FILES := proto/meshwan/v1/meshwan.proto
PROTO_GEN_C := $(PROTO_FILES:proto/%.proto=$(BUILD)/proto/%.pb-c.c)
PROTO_GEN_H := $(PROTO_GEN_C:.c=.h)
PROTO_GEN   := $(PROTO_GEN_C) $(PROTO_GEN_H)
PROTO_GEN_OBJS := $(PROTO_GEN_C:%.c=%.o)

$(BUILD)/proto/%.pb-c.c $(BUILD)/proto/%.pb-c.h: proto/%.proto | deps-checked
	$(say) PROTOC $<
	@mkdir -p $(BUILD)/proto
	$(Q)protoc-c --proto_path=proto --c_out=$(BUILD)/proto $<

$(BUILD)/proto/%.pb-c.o: $(BUILD)/proto/%.pb-c.c
	$(say) CC $<
	$(Q)$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -c -o $@ $<

# An object that includes a generated header says so with an order-only
# prerequisite:   $(BUILD)/proto/pbconv.o: | $(PROTO_GEN_H)

-include proto/pbconv.mk
-include proto/rpc.mk
