"""Reading the published alert log back: the parts (reader), the current state of every
alert (view), and its renderings for people and scripts (render, html)."""
