"""Outside data: generators written apart from custintel's simulator, with their own
vocabularies, noise models and column sets, so tests can show a stage works on data the
simulator did not make."""
