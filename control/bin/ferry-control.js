#!/usr/bin/env node
'use strict';
require('../../build/control/src/main.js');
