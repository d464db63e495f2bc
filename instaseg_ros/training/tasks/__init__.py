"""One training task per model family on a shared base (:mod:`.base`: data sets, augmentation,
seeding, data reports, validation). ``config.TASKS`` maps a config's ``task:`` to its class."""
