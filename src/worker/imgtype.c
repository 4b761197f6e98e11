/* placeholder, replaced by the worker implementation */
