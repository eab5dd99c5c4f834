"""Where tuning acted: weight deltas per layer, module and head (`weights`), from pure statistics (`delta`)."""
