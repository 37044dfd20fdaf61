#!/usr/bin/env node
'use strict';
require('../../build/control/src/cli/ferryctl.js').main(process.argv.slice(2));
