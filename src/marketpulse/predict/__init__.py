"""Price-movement prediction: datasets with time-ordered splits, models behind one interface, honest evaluation."""
