"""Sphinx configuration: the pages under docs/, written in Markdown (MyST), built strict.

`make docs` and tests/unit/test_docs.py build them with `-W`: a link to a missing page, a
`page.md#anchor` whose heading does not exist, a missing picture or include fails the build.
"""

project = "triage"
author = "the triage authors"
extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Every heading down to ### gets a GitHub-style anchor, so `[x](page.md#section)` is checked.
myst_heading_anchors = 3
# A link to a file that is neither a page nor a known target is an error, not an external link.
myst_all_links_external = False

html_theme = "alabaster"
html_title = "triage"
html_theme_options = {"description": "Support messages routed on Kafka by binary classifiers"}
