"""The Flyte library: template loading, inputs, rendering, translation to PERIAN, phases, storage; task authoring."""
