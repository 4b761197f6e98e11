/* placeholder, replaced by the http child implementation */
