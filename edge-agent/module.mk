# edge-agent/ — meshwan-edge.  Each piece owns its own fragment.
-include edge-agent/agent.mk
