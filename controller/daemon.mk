# controller/daemon.mk — meshwan-controller itself: config, CA,
# enrollment, edge sessions, the event loop; and their tests.

CTLD_SRCS := controller/main.c controller/config.c controller/ca.c \
             controller/enroll.c controller/session.c \
             controller/session_intent.c controller/session_rekey.c \
             controller/session_keys.c controller/session_status.c \
             controller/intent.c \
             controller/epochs.c controller/replica.c
CTLD_OBJS := $(CTLD_SRCS:%.c=$(BUILD)/%.o)
ANALYZE_SRCS += $(CTLD_SRCS)
$(CTLD_OBJS): | $(PROTO_GEN_H)

TEST_BINS += $(BUILD)/tests/unit/test_ctld_config
TESTS     += $(BUILD)/tests/unit/test_ctld_config
$(BUILD)/tests/unit/test_ctld_config: $(BUILD)/tests/unit/test_ctld_config.o \
    $(BUILD)/controller/config.o $(MODEL_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_CMOCKA))

TEST_BINS += $(BUILD)/tests/unit/test_ctld_ca
TESTS     += $(BUILD)/tests/unit/test_ctld_ca
$(BUILD)/tests/unit/test_ctld_ca: $(BUILD)/tests/unit/test_ctld_ca.o \
    $(BUILD)/controller/ca.o $(BUILD)/proto/epochsig.o $(BUILD)/proto/sakey.o \
    $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_CRYPTO) $(LIBS_CMOCKA))

TEST_BINS += $(BUILD)/tests/unit/test_epochs
TESTS     += $(BUILD)/tests/unit/test_epochs
$(BUILD)/tests/unit/test_epochs: $(BUILD)/tests/unit/test_epochs.o \
    $(BUILD)/controller/epochs.o $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_CMOCKA))

TEST_BINS += $(BUILD)/tests/unit/test_ctld_intent
TESTS     += $(BUILD)/tests/unit/test_ctld_intent
$(BUILD)/tests/unit/test_ctld_intent.o: | $(PROTO_GEN_H)
$(BUILD)/tests/unit/test_ctld_intent: $(BUILD)/tests/unit/test_ctld_intent.o \
    $(BUILD)/controller/intent.o $(TOPO_OBJS) $(MODEL_OBJS) $(PBCONV_OBJS) \
    $(PROTO_GEN_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_PBCONV) $(LIBS_CMOCKA))

TEST_BINS += $(BUILD)/tests/unit/test_enroll_rl
TESTS     += $(BUILD)/tests/unit/test_enroll_rl
$(BUILD)/tests/unit/test_enroll_rl.o: | $(PROTO_GEN_H)
$(BUILD)/tests/unit/test_enroll_rl: $(BUILD)/tests/unit/test_enroll_rl.o \
    $(BUILD)/controller/enroll.o $(BUILD)/controller/ca.o $(API_OBJS) \
    $(TOPO_OBJS) \
    $(STORE_OBJS) $(MODEL_OBJS) $(PBCONV_OBJS) $(PROTO_GEN_OBJS) \
    $(RPC_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(API_LIBS) $(STORE_LIBS) $(LIBS_PBCONV) \
		$(LIBS_GRPC) $(LIBS_CRYPTO) $(LIBS_CMOCKA))

# The test edge: enrolls and runs a Session through edge-agent's library
# (edge-agent/module.mk adds $(EDGE_LIB_OBJS) to it and to ctl_load).
CTL_EDGE := $(BUILD)/tests/ctl/edge_client
$(BUILD)/tests/ctl/%.o: EXTRA_CFLAGS += -Wno-missing-prototypes
$(BUILD)/tests/ctl/edge_client.o: | $(PROTO_GEN_H)
$(CTL_EDGE): $(BUILD)/tests/ctl/edge_client.o $(RPC_OBJS) $(PBCONV_OBJS) \
		$(PROTO_GEN_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_GRPC) $(LIBS_PBCONV) $(LIBS_CRYPTO))
TEST_BINS += $(CTL_EDGE)

# A connected edge's delay while bad Enroll calls flood the controller.
CTL_FLOOD := $(BUILD)/tests/ctl/enroll_flood
$(BUILD)/tests/ctl/enroll_flood.o: | $(PROTO_GEN_H)
$(CTL_FLOOD): $(BUILD)/tests/ctl/enroll_flood.o $(RPC_OBJS) $(PBCONV_OBJS) \
		$(PROTO_GEN_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_GRPC) $(LIBS_PBCONV) $(LIBS_CURL))
TEST_BINS += $(CTL_FLOOD)

# A misbehaving enrolled edge (tests/ctl/hostile.sh).
CTL_HOSTILE := $(BUILD)/tests/ctl/hostile
$(BUILD)/tests/ctl/hostile.o: | $(PROTO_GEN_H)
$(CTL_HOSTILE): $(BUILD)/tests/ctl/hostile.o $(RPC_OBJS) $(PBCONV_OBJS) \
		$(PROTO_GEN_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_GRPC) $(LIBS_PBCONV) $(LIBS_CRYPTO))
TEST_BINS += $(CTL_HOSTILE)

# The daemon: its own objects, the REST API, the store and compiler, the
# wire layer.
BINS += $(BUILD)/controller/meshwan-controller
$(BUILD)/controller/meshwan-controller: $(CTLD_OBJS) $(API_OBJS) \
		$(STORE_OBJS) $(TOPO_OBJS) $(MODEL_OBJS) $(PBCONV_OBJS) \
		$(PROTO_GEN_OBJS) $(RPC_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(API_LIBS) $(STORE_LIBS) $(LIBS_PBCONV) \
		$(LIBS_GRPC) $(LIBS_SSL) $(LIBS_JANSSON))

# The REST load client and store checker of tests/ctl/consistency.sh.
CTL_CHURN := $(BUILD)/tests/ctl/churn
$(CTL_CHURN): $(BUILD)/tests/ctl/churn.o $(STORE_OBJS) $(TOPO_OBJS) \
		$(MODEL_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(STORE_LIBS) $(LIBS_CURL) $(LIBS_JANSSON) -lpthread)
TEST_BINS += $(CTL_CHURN)

TESTS += tests/ctl/config.sh tests/ctl/edge_session.sh tests/ctl/peer_keys.sh \
         tests/ctl/rekey_time.sh tests/ctl/backpressure.sh \
         tests/ctl/restart.sh tests/ctl/patch_check.sh \
         tests/ctl/consistency.sh tests/ctl/hostile.sh \
         tests/ctl/cert_renew.sh tests/ctl/enroll_flood.sh \
         tests/ctl/ctl_asan.sh tests/ctl/sa_keys.sh tests/ctl/rekey_request.sh
# Issue 7 §6: revocation, headless grace, far-ahead hellos, group commit.
TESTS += tests/ctl/revoke.sh tests/ctl/far_version.sh tests/ctl/headless.sh \
         tests/ctl/group_commit.sh tests/ctl/pg_store.sh \
         tests/ctl/pg_replicas.sh
# Issue 12: two replicas on PostgreSQL (keys, rekeys and renewals across
# them, a replica killed, the database stopped, concurrent writers).
TESTS += tests/ctl/pg_ha_keys.sh tests/ctl/pg_failover.sh \
         tests/ctl/pg_outage.sh tests/ctl/pg_concurrency.sh \
         tests/ctl/pg_asan.sh
# The leader frozen (SIGSTOP), not killed: its lease lapses, it is fenced.
TESTS += tests/ctl/pg_frozen_leader.sh
# Issue 12 §3: Enroll calls sharing one commit.
TESTS += tests/ctl/enroll_batch.sh
# A crowd of edges and a reconnect storm (admission bound): 300 simulated
# edges; the load generator is cut off at 300 s.  Passed 11 of 12 here
# (the other was ended 27 s in by a SIGTERM from outside the test):
# 30-48 s at load averages of 16-200, 57-108 s beside two busy loops.
# Its restart phase (bound 60 s) took 3-7 s, but 31 and 40 s in two of
# the busy-loop runs (edges that failed while it was down back off up to
# 30 s): the first thing to look at if it fails on a very loaded machine.
TESTS += tests/ctl/reconnect_storm.sh
# A lost Enroll answer: the same token and key get the same certificate.
TESTS += tests/ctl/enroll_replay.sh
# Peer.allowed_prefixes in intents (hubs carry their neighbours').
TESTS += tests/ctl/allowed_prefixes.sh
# An encap switch re-allocates tunnels: fresh SA epochs and SPIs, cache
# and store alike, on sqlite and PostgreSQL.
TESTS += tests/ctl/encap_epochs.sh

# Memory of kept intents, certificates shared vs copied (make bench).
BENCHES += $(BUILD)/tests/bench/intent_mem_bench
$(BUILD)/tests/bench/intent_mem_bench.o: | $(PROTO_GEN_H)
$(BUILD)/tests/bench/intent_mem_bench: \
    $(BUILD)/tests/bench/intent_mem_bench.o $(BUILD)/controller/intent.o \
    $(TOPO_OBJS) $(MODEL_OBJS) $(PBCONV_OBJS) $(PROTO_GEN_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_PBCONV))

# Session load generator for `make bench` (tests/bench/ctl_bench.sh).
CTL_LOAD := $(BUILD)/tests/bench/ctl_load
$(BUILD)/tests/bench/ctl_load.o: | $(PROTO_GEN_H)
$(CTL_LOAD): $(BUILD)/tests/bench/ctl_load.o $(RPC_OBJS) $(PBCONV_OBJS) \
		$(PROTO_GEN_OBJS) $(LIB_OBJS)
	$(call link,$@,$^,$(LIBS_GRPC) $(LIBS_PBCONV) $(LIBS_CRYPTO) \
		$(LIBS_CURL) $(LIBS_JANSSON))
BENCHES += $(CTL_LOAD)
# After its definition: TEST_BINS is simply expanded, so an earlier
# `+= $(CTL_LOAD)` added nothing and make test never built it.
TEST_BINS += $(CTL_LOAD)
# The descriptor limit hit during a reconnect storm (proto/rpc.c's
# accept4 guard, handshake_timeout): recovers, every edge converges.
TESTS += tests/ctl/fd_exhaust.sh
