"""The model core: artifacts and their papers, featurisers, scoring, signing, the decision rule
and the quality arithmetic; no Kafka here, imported by classifiers, heads, training and tools."""
