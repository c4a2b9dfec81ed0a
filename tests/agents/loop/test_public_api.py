import agents.loop


def test_loop_public_names_are_a_decision() -> None:
    assert sorted(agents.loop.__all__) == [
        "Agent",
        "Limits",
        "McpToolbox",
        "Tool",
        "ToolError",
        "ToolOutcome",
        "Toolbox",
        "ToolboxError",
        "agent_stages",
        "tool",
    ]
