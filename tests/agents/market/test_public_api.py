import agents.market


def test_market_public_names_are_a_decision() -> None:
    assert sorted(agents.market.__all__) == [
        "DEFAULT_ALIASES",
        "Direction",
        "Marker",
        "NewsSignal",
        "Signal",
        "WindowSignal",
        "WindowView",
        "extract_signals",
        "find_symbols",
        "price_chart_svg",
        "report_html",
        "summarize_window",
    ]
